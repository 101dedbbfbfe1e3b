"""Automatic repair: a start-up after a silence backfills the gap; the rolling backfill
catches losses on a timer; the metrics count what they did."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.store import create_store

from ..conftest import wait_for
from ..pg import empty_database_sync
from .test_outage import BACKENDS, Outage, outage_setup, send


def seed_heartbeat(url: str, owner: str, at: float) -> None:
    """A heartbeat row, as a worker that stopped at ``at`` left it, and every earlier
    process's heartbeat moved back to ``at`` (they all stopped then: workers beat every
    few seconds while they run)."""

    async def write() -> None:
        store = create_store(url)
        await store.open()
        try:
            await store.execute("UPDATE heartbeats SET at = ?", (at,))  # type: ignore[attr-defined]
            await store.heartbeat(owner, at)
        finally:
            await store.close()

    asyncio.run(write())


def metric(o: Outage, name: str) -> float:
    """One sample of the receiver's /metrics."""
    text = httpx.get(f"{o.server.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_start_after_a_silence_backfills_the_gap(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Statuses lost while no receiver ran are stored at the next start: its workers'
    last heartbeat is older than RECEIVER_BACKFILL_GAP_SECONDS."""
    with empty_database_sync(backend, tmp_path) as url:
        with outage_setup(backend, tmp_path, monkeypatch, url=url) as first:
            first.fake.webhooks_down = True
            first.fake.auto_timeline = (3, 4)
            lost = send(capsys, "+15550000011")
        seed_heartbeat(url, "worker-gone", time.time() - 7200)
        again = {"fake": first.fake, "url": url, "backfill_gap_seconds": 600.0}
        with outage_setup(backend, tmp_path, monkeypatch, **again) as o:
            wait_for(lambda: o.rows("SELECT cause, stored FROM backfill_runs") == [("startup", 1)])
            assert o.rows("SELECT message_id, status, source FROM events") == [
                (str(lost), 4, "backfill")
            ]
            assert metric(o, 'receiver_backfill_stored_total{account="default"}') == 1.0
            assert metric(o, 'receiver_backfill_gaps_repaired_total{account="default"}') == 1.0
            assert (
                metric(o, 'receiver_backfill_last_success_timestamp_seconds{account="default"}') > 0
            )


def test_no_repair_after_a_short_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat fresher than the threshold (a restart, another replica up): no run."""
    with outage_setup("sqlite", tmp_path, monkeypatch):
        pass
    seed_heartbeat(f"sqlite:///{tmp_path / 'receiver.db'}", "worker-up", time.time() - 5)
    with outage_setup("sqlite", tmp_path, monkeypatch, backfill_gap_seconds=600.0) as o:
        assert o.rows("SELECT COUNT(*) FROM backfill_runs") == [(0,)]
        assert [r.path for r in o.fake.requests if r.path.endswith("/deliveries")] == []


def test_the_rolling_backfill_catches_losses_on_a_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """With RECEIVER_BACKFILL_INTERVAL set, a status whose webhook was lost while the
    receiver ran is stored by the next rolling run."""
    with outage_setup("sqlite", tmp_path, monkeypatch, backfill_interval=0.3) as o:
        o.fake.webhooks_down = True
        o.fake.auto_timeline = (3, 4)
        lost = send(capsys, "+15550000012")
        # A run may catch the message at 3 (sent) before its 4: each status is stored once.
        query = "SELECT message_id, status, source FROM events"
        wait_for(lambda: (str(lost), 4, "backfill") in o.rows(query))
        assert {(m, source) for m, _, source in o.rows(query)} == {(str(lost), "backfill")}
        # The run is recorded when it ends, just after it stored the event.
        wait_for(lambda: o.rows("SELECT cause FROM backfill_runs") != [])
        assert {c for (c,) in o.rows("SELECT cause FROM backfill_runs")} == {"interval"}
