"""The fallback across kill -9: the resend is neither lost nor sent twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta

from ..conftest import SECRET, Process, process_env, start_process, wait_for

pytestmark = pytest.mark.slow
API_KEY = "fake-key"


def resend_state(tmp_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / "receiver.db") as conn:
        try:
            return conn.execute("SELECT state, resend_message_id FROM resends").fetchall()
        except sqlite3.OperationalError:  # no schema yet
            return []


def play_failure(process: Process, message_id: int) -> None:
    message = TimelineMessage(
        message_id,
        "+15551230000",
        text="Your code: 42",
        external_id=f"order-{message_id}",
        sender_name="Acme",
    )
    results = asyncio.run(play_timeline(f"{process.url}/webhooks/mta", SECRET, message, [3, 6]))
    assert [r.status_code for r in results] == [200, 200, 200]


@pytest.mark.parametrize("moment", ["right_after_200", "during_grace"])
def test_sigkill_before_the_send_gives_exactly_one_send(tmp_path, processes, moment) -> None:
    """Killed after the 200 or while the resend waits out its grace: one send after restart."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    with running_fake_mta(fake) as base_url:
        env = process_env(
            tmp_path,
            RECEIVER_MTA_API_KEY=API_KEY,
            RECEIVER_MTA_BASE_URL=base_url,
            RECEIVER_MTA_SEND_RATE="1000/1s",
            RECEIVER_FALLBACK_GRACE_SECONDS="1" if moment == "right_after_200" else "3",
            RECEIVER_LEASE_SECONDS="1",
        )
        args = ("--no-worker",) if moment == "right_after_200" else ()
        first = start_process(tmp_path, env, *args)
        processes.append(first)
        play_failure(first, 4242)
        if moment == "during_grace":
            wait_for(lambda: resend_state(tmp_path) == [("scheduled", None)])
        first.kill()
        assert fake.sends == []

        processes.append(start_process(tmp_path, env))
        wait_for(lambda: resend_state(tmp_path) and resend_state(tmp_path)[0][0] == "sent", 20)
        assert len(fake.sends) == 1
        assert resend_state(tmp_path) == [("sent", str(fake.sends[0].message_id))]
