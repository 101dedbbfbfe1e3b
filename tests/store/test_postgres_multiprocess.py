"""Three `mta-receiver serve` processes on one PostgreSQL database, with the fake MTA.

Proves the replicas share one truth: a failure webhook delivered 50 times across them
sends one SMS; 300 events spread across them are each handled once; a replica killed
while it holds leases loses them to the others, and nothing runs twice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta

from ..conftest import (
    SECRET,
    Process,
    delivery,
    encode,
    process_env,
    signed_headers,
    start_process,
    wait_for,
)
from ..pg import fresh_database_sync, query
from ..sample_handlers import read_log

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

API_KEY = "fake-key"
PHONE = "+15551230000"
VICTIM_CONCURRENCY = 7  # tells the victim's leases apart from the others' (16 each)


class Cluster:
    """Three receivers sharing a fresh database, their handler log and the fake MTA."""

    def __init__(self, tmp_path: Path, url: str, fake: FakeMTA, procs: list[Process]) -> None:
        self.tmp_path, self.url, self.fake, self.procs = tmp_path, url, fake, procs
        self.calls = tmp_path / "calls.jsonl"
        self.client = httpx.Client(timeout=10)

    def hold(self, index: int) -> Path:
        """While this file exists, process ``index``'s status handler waits."""
        return self.tmp_path / f"hold-{index}"

    def post(self, index: int, payload: dict[str, Any]) -> int:
        body = encode(payload)
        url = f"{self.procs[index % 3].url}/webhooks/mta"
        return self.client.post(url, content=body, headers=signed_headers(body)).status_code

    def spread(self, payloads: list[dict[str, Any]]) -> list[int]:
        """POST every payload concurrently, round-robin over the three processes."""
        with ThreadPoolExecutor(50) as pool:
            return list(pool.map(self.post, itertools.count(), payloads))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return query(self.url, sql, *params)

    def settled(self, events: int, timeout: float = 20) -> None:
        """``events`` stored and none pending."""
        done = "SELECT count(*), count(*) FILTER (WHERE state = 'pending') FROM events"
        wait_for(lambda: self.rows(done) == [(events, 0)], timeout=timeout, interval=0.05)


@pytest.fixture
def cluster(tmp_path: Path, processes: list[Process]) -> Iterator[Cluster]:
    """Start three receivers together (they race to migrate) against the fake MTA."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    with fresh_database_sync() as url, running_fake_mta(fake) as base_url:
        for index in range(3):
            env = process_env(
                tmp_path,
                RECEIVER_DATABASE_URL=url,
                RECEIVER_HANDLERS="tests.sample_handlers",
                SAMPLE_HANDLERS_LOG=str(tmp_path / "calls.jsonl"),
                SAMPLE_HANDLERS_HOLD=str(tmp_path / f"hold-{index}"),
                RECEIVER_LEASE_SECONDS="2",
                RECEIVER_WORKER_CONCURRENCY=str(VICTIM_CONCURRENCY if index == 0 else 16),
                RECEIVER_MTA_API_KEY=API_KEY,
                RECEIVER_MTA_BASE_URL=base_url,
                RECEIVER_MTA_SEND_RATE="1000/1s",
                RECEIVER_FALLBACK_GRACE_SECONDS="0.2",
                RECEIVER_FALLBACK_RECONCILE_SECONDS="0.5",
            )
            processes.append(start_process(tmp_path, env, wait=False))
        for process in processes:
            wait_for(process.healthy, timeout=20, interval=0.05)
        made = Cluster(tmp_path, url, fake, processes)
        try:
            yield made
        finally:
            made.client.close()
            for process in processes:  # before the database is dropped under them
                process.kill()


def test_fifty_copies_of_a_failure_across_replicas_send_once(cluster: Cluster) -> None:
    """50 concurrent copies of one failed-iMessage webhook, spread over 3 replicas: one send."""
    mid = 4100
    message = TimelineMessage(
        mid, PHONE, text="Your code: 42", external_id=f"order-{mid}", sender_name="Acme"
    )
    played = asyncio.run(
        play_timeline(cluster.procs[0].url + "/webhooks/mta", SECRET, message, [3])
    )
    assert all(r.ok for r in played), played
    failure = {
        "destinationNumber": PHONE,
        "messageId": mid,
        "externalId": f"order-{mid}",
        "status": 6,
        "senderName": "Acme",
        "type": "delivery-status",
    }

    assert cluster.spread([failure] * 50) == [200] * 50

    sent = "SELECT state FROM resends WHERE original_message_id = $1"
    wait_for(lambda: cluster.rows(sent, str(mid)) == [("sent",)], timeout=15, interval=0.05)
    cluster.settled(3)
    assert [r.body["message"] for r in cluster.fake.sends] == ["Your code: 42"]
    assert cluster.rows("SELECT max(duplicates) FROM events") == [(49,)]
    statuses = [c["name"] for c in read_log(cluster.calls)]
    assert sorted(statuses) == ["delivery-status.delivery-failed", "delivery-status.sent"]


def test_three_hundred_events_across_replicas_are_each_handled_once(cluster: Cluster) -> None:
    """300 distinct events spread over 3 replicas: each dispatched exactly once."""
    payloads = [delivery(message_id=n, status=4) for n in range(1, 301)]

    assert cluster.spread(payloads) == [200] * 300

    cluster.settled(300)
    calls = read_log(cluster.calls)
    assert sorted(c["message_id"] for c in calls) == sorted(str(n) for n in range(1, 301))
    assert len({c["pid"] for c in calls}) >= 2, "the work was shared between processes"
    runs = cluster.rows("SELECT handler, max(attempts), count(*) FROM handler_runs GROUP BY 1")
    assert len(runs) >= 2, runs  # the built-in fallback handlers and the sample one
    assert all((attempts, count) == (1, 300) for _, attempts, count in runs), runs


def test_sigkilled_replica_loses_its_leases_to_the_others(cluster: Cluster) -> None:
    """A replica killed holding leases: the others take its events over once the leases
    expire and finish all of them; no event is handled twice."""
    for index in range(3):
        cluster.hold(index).touch()
    assert cluster.spread([delivery(message_id=n, status=4) for n in range(1, 61)]) == [200] * 60
    leased = "SELECT lease_owner, count(*) FROM events WHERE lease_owner IS NOT NULL GROUP BY 1"
    wait_for(
        lambda: sorted(n for _, n in cluster.rows(leased)) == [VICTIM_CONCURRENCY, 16, 16],
        timeout=15,
    )
    [victim] = [owner for owner, n in cluster.rows(leased) if n == VICTIM_CONCURRENCY]
    orphans = {r[0] for r in cluster.rows("SELECT id FROM events WHERE lease_owner = $1", victim)}

    cluster.procs[0].kill()
    cluster.hold(1).unlink()
    cluster.hold(2).unlink()

    cluster.settled(60, timeout=20)
    calls = read_log(cluster.calls)
    per_event = Counter(c["event_id"] for c in calls)
    assert len(per_event) == 60
    assert set(per_event.values()) == {1}, "an event was handled twice"
    assert orphans <= set(per_event), "the victim's events were finished by the others"
    assert cluster.procs[0].proc.pid not in {c["pid"] for c in calls}
    assert cluster.rows("SELECT max(attempts) FROM events") == [(1,)]
