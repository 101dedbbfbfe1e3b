"""The receiver as a real process: kill -9 after a 200, SIGTERM, custom handler modules."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import (
    Process,
    delivery,
    encode,
    process_env,
    signed_headers,
    start_process,
    wait_for,
)
from ..sample_handlers import read_log

pytestmark = pytest.mark.slow


def post(process: Process, payload: dict[str, object]) -> httpx.Response:
    body = encode(payload)
    return httpx.post(
        f"{process.url}/webhooks/mta", content=body, headers=signed_headers(body), timeout=10
    )


def rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / "receiver.db") as conn:
        return conn.execute(sql).fetchall()


def test_sigkill_right_after_200_processes_event_after_restart(tmp_path, processes) -> None:
    """An event answered 200 survives kill -9 and its handler runs once after restart."""
    calls = tmp_path / "calls.jsonl"
    env = process_env(
        tmp_path, RECEIVER_HANDLERS="tests.sample_handlers", SAMPLE_HANDLERS_LOG=str(calls)
    )
    first = start_process(tmp_path, env, "--no-worker")
    processes.append(first)
    assert post(first, delivery(message_id=7, status=6)).status_code == 200
    first.kill()
    assert read_log(calls) == []

    processes.append(start_process(tmp_path, env))
    wait_for(lambda: read_log(calls), timeout=10)
    wait_for(lambda: rows(tmp_path, "SELECT state FROM events") == [("done",)])
    assert [(c["handler"], c["message_id"]) for c in read_log(calls)] == [("on_status", "7")]


def start_holding(
    tmp_path: Path, processes: list[Process], message_id: int, **settings: str
) -> tuple[dict[str, str], Process]:
    """Start a receiver whose sample handlers hold (``tmp_path/hold`` exists), post one
    delivery status and wait until its event is leased; return the env and the process.
    The handlers log their calls to ``tmp_path/calls.jsonl``."""
    hold = tmp_path / "hold"
    hold.touch()
    env = process_env(
        tmp_path,
        RECEIVER_HANDLERS="tests.sample_handlers",
        SAMPLE_HANDLERS_LOG=str(tmp_path / "calls.jsonl"),
        SAMPLE_HANDLERS_HOLD=str(hold),
        **settings,
    )
    process = start_process(tmp_path, env)
    processes.append(process)
    assert post(process, delivery(message_id=message_id, status=4)).status_code == 200
    wait_for(lambda: rows(tmp_path, "SELECT lease_owner FROM events WHERE lease_owner IS NOT NULL"))
    return env, process


def test_sigkill_while_leased_is_picked_up_after_lease_expiry(tmp_path, processes) -> None:
    """Work leased by a killed worker is taken again once its lease expires, and runs once."""
    env, first = start_holding(tmp_path, processes, 8, RECEIVER_LEASE_SECONDS="1")
    calls, hold = tmp_path / "calls.jsonl", tmp_path / "hold"
    first.kill()
    hold.unlink()

    processes.append(start_process(tmp_path, env))
    wait_for(lambda: rows(tmp_path, "SELECT state FROM events") == [("done",)], timeout=15)
    assert [c["message_id"] for c in read_log(calls)] == ["8"]


def test_sigkill_while_leased_resumes_within_seconds_after_restart(tmp_path, processes) -> None:
    """kill -9 while holding a 60 s lease, restart at once: the new process takes the
    dead one's lease over when its heartbeat goes stale (5 x 0.5 s), not after 60 s."""
    env, first = start_holding(tmp_path, processes, 10, RECEIVER_HEARTBEAT_SECONDS="0.5")
    calls, hold = tmp_path / "calls.jsonl", tmp_path / "hold"
    first.kill()
    killed = time.monotonic()
    hold.unlink()

    processes.append(start_process(tmp_path, env))
    wait_for(lambda: rows(tmp_path, "SELECT state FROM events") == [("done",)], timeout=20)
    assert time.monotonic() - killed < 15
    assert [c["message_id"] for c in read_log(calls)] == ["10"]


def test_sigterm_releases_unfinished_work(tmp_path, processes) -> None:
    """SIGTERM stops the process cleanly; work it could not finish is released, not lost."""
    env, first = start_holding(tmp_path, processes, 9, RECEIVER_SHUTDOWN_GRACE_SECONDS="0.5")
    calls, hold = tmp_path / "calls.jsonl", tmp_path / "hold"
    first.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after a graceful shutdown (exit 143 to a supervisor).
    assert first.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "receiver stopped" in first.output()
    assert rows(tmp_path, "SELECT state, lease_owner FROM events") == [("pending", None)]

    hold.unlink()
    processes.append(start_process(tmp_path, env))
    wait_for(lambda: rows(tmp_path, "SELECT state FROM events") == [("done",)])
    assert [c["message_id"] for c in read_log(calls)] == ["9"]


def test_sigterm_with_a_subsecond_grace_does_not_wait_for_a_stalled_request(
    tmp_path, processes
) -> None:
    """A grace of 0.5 s still bounds the wait for requests in flight: a client stalled
    mid-body is cut off after about a second, not after the 60 s read deadline."""
    env = process_env(tmp_path, RECEIVER_SHUTDOWN_GRACE_SECONDS="0.5", RECEIVER_READ_TIMEOUT="60")
    process = start_process(tmp_path, env)
    processes.append(process)
    host, port = process.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as stalled:
        stalled.sendall(b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        # Once another request is answered, the stalled one has been read up to the
        # body: the server serves its connections in order of arrival.
        assert process.healthy()
        started = time.monotonic()
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 8
    assert "graceful shutdown exceeded" in process.output()


def test_custom_handler_module_loaded_from_environment(tmp_path, processes) -> None:
    """RECEIVER_HANDLERS loads a user's module; its handlers get the events they registered."""
    calls = tmp_path / "calls.jsonl"
    env = process_env(
        tmp_path, RECEIVER_HANDLERS="tests.sample_handlers:registry", SAMPLE_HANDLERS_LOG=str(calls)
    )
    process = start_process(tmp_path, env)
    processes.append(process)
    reply = {
        "fromNumber": "+15550001111",
        "replyId": 55,
        "message": "STOP",
        "type": "message-reply",
    }
    assert post(process, reply).status_code == 200
    assert post(process, delivery(message_id=10, status=3)).status_code == 200
    wait_for(lambda: len(read_log(calls)) == 2)
    assert sorted(c["name"] for c in read_log(calls)) == ["delivery-status.sent", "message-reply"]
