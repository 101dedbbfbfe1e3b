"""`mta-receiver trigger`: a signed sample webhook of each kind reaches a running receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..conftest import Process, process_env, start_process, wait_for

EVENTS = {
    "delivery-status": "delivery-status.delivery-failed",
    "message-reply": "message-reply",
    "message-send": "message-send",
    "number-opt-in": "number-opt-in",
}


def command(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mta-receiver ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_trigger_each_event_lands_in_events_list(tmp_path: Path, processes: list[Process]) -> None:
    """Each of the four sample webhooks, signed with the first secret, gets a 200 and
    shows up in `events list`; signed with another secret, a 401 explained."""
    env = process_env(tmp_path)
    receiver = start_process(tmp_path, env)
    processes.append(receiver)
    url = f"{receiver.url}/webhooks/mta"
    for event in EVENTS:
        extra = ("--status", "6", "--message-id", "4242") if event == "delivery-status" else ()
        done = command(env, tmp_path, "trigger", event, "--url", url, *extra)
        assert done.returncode == 0, done
        assert done.stdout.splitlines()[0] == f"POST {url}?event={event}"
        assert "200 OK" in done.stdout

    def listed() -> list[dict[str, object]] | None:
        rows = json.loads(command(env, tmp_path, "events", "list", "--json").stdout)
        return rows if len(rows) == len(EVENTS) else None

    rows = wait_for(listed)
    assert sorted(str(row["name"]) for row in rows) == sorted(EVENTS.values())
    failed = next(row for row in rows if row["name"] == "delivery-status.delivery-failed")
    assert failed["message_id"] == "4242"

    # A shell whose secret differs from the receiver's gets its 401 explained.
    other = dict(env, RECEIVER_WEBHOOK_SECRETS="another-secret-0123456789")
    done = command(other, tmp_path, "trigger", "number-opt-in", "--url", url)
    assert done.returncode == 1
    assert "401 Unauthorized" in done.stdout
    assert "RECEIVER_WEBHOOK_SECRETS differ" in done.stdout


def test_trigger_without_a_receiver_says_so(tmp_path: Path) -> None:
    """Nothing listening: one line naming the URL, exit 1."""
    done = command(
        process_env(tmp_path), tmp_path, "trigger", "message-reply", "--url", "http://127.0.0.1:1/x"
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "mta-receiver: no answer from http://127.0.0.1:1/x?event=message-reply (ConnectError):"
        " is `mta-receiver serve` running there?"
    ]


def test_status_is_for_delivery_status_only(tmp_path: Path) -> None:
    """--status on another event type is a usage error naming the flag."""
    done = command(process_env(tmp_path), tmp_path, "trigger", "message-reply", "--status", "4")
    assert done.returncode == 2
    assert "--status is for delivery-status webhooks only" in done.stderr
