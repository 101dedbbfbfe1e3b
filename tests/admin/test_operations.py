"""Operator operations (receiver/operations.py) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.fallback import policy
from receiver.store import DEAD, DONE, Completion, HandlerRun, Store
from receiver.store.operator import EventFilter

from ..conftest import delivery, schedule_resend
from ..store.test_store import LEASE, NOW, T0, incoming, reply


async def dead_letter(store: Store, message_id: int = 77) -> int:
    """An event whose handler ``crm`` died while ``audit`` finished; its id."""
    event_id = (await store.ingest(incoming(delivery(message_id, status=6)))).event_id
    [claimed] = await store.claim("w", 10, LEASE, now=NOW)
    runs = (HandlerRun("crm", DEAD, 3, "crm: boom"), HandlerRun("audit", DONE, 1))
    await store.complete("w", [Completion(claimed.id, DEAD, NOW, runs, "crm: boom")], now=NOW)
    return event_id


async def unknown(store: Store, original: str) -> None:
    """A resend whose outcome nobody knows."""
    await schedule_resend(store, original, at=T0, state="unknown", reason="no webhook")


async def test_retry_dead_letter_resets_only_dead_runs(store: Store) -> None:
    """Retry: the event is pending and due now, unleased, attempts kept; its dead run is
    failed with 0 attempts, the finished run untouched; a second retry is refused."""
    event_id = await dead_letter(store)

    assert await store.maintenance.retry_dead_letter(event_id, NOW + 50) is True
    assert await store.fetch(
        "SELECT state, run_after, attempts, lease_owner, finished_at FROM events WHERE id = ?",
        (event_id,),
    ) == [("pending", NOW + 50, 1, None, None)]
    assert await store.fetch(
        "SELECT handler, state, attempts FROM handler_runs WHERE event_id = ? ORDER BY handler",
        (event_id,),
    ) == [("audit", DONE, 1), ("crm", "failed", 0)]
    assert await store.maintenance.retry_dead_letter(event_id, NOW + 60) is False
    [claimed] = await store.claim("w2", 10, LEASE, now=NOW + 50)
    assert claimed.runs["crm"].attempts == 0


async def test_retry_refuses_events_that_are_not_dead(store: Store) -> None:
    """A pending event, or an unknown id, is left alone (and its runs too)."""
    event_id = (await store.ingest(incoming(delivery(5, status=3)))).event_id
    assert await store.maintenance.retry_dead_letter(event_id, NOW) is False
    assert await store.maintenance.retry_dead_letter(999_999, NOW) is False


async def test_retry_many_dead_letters_returns_those_requeued(store: Store) -> None:
    """Several ids at once: the dead ones are pending again with their dead runs reset;
    a pending event and an unknown id are skipped; the re-queued ids come back sorted."""
    first = await dead_letter(store, message_id=77)
    second = await dead_letter(store, message_id=78)
    waiting = (await store.ingest(incoming(delivery(79, status=3)))).event_id

    retried = await store.maintenance.retry_dead_letters(
        [second, waiting, 999_999, first], NOW + 50
    )
    assert retried == sorted([first, second])
    assert await store.fetch(
        "SELECT event_id, handler, state, attempts FROM handler_runs ORDER BY event_id, handler"
    ) == [
        (first, "audit", DONE, 1),
        (first, "crm", "failed", 0),
        (second, "audit", DONE, 1),
        (second, "crm", "failed", 0),
    ]
    assert await store.fetch("SELECT count(*) FROM events WHERE state = 'pending'") == [(3,)]


async def test_resend_and_drop_only_from_unknown(store: Store) -> None:
    """Resend schedules an unknown resend due now; drop cancels one; neither twice."""
    await unknown(store, "1")
    await unknown(store, "2")
    assert [r.original_message_id for r in await store.operator.awaiting_decision()] == ["1", "2"]
    assert await policy.operator_resend(store.resends, "1", NOW) is True
    assert await policy.operator_drop(store.resends, "2", NOW) is True
    assert await policy.operator_resend(store.resends, "2", NOW) is False
    assert await policy.operator_drop(store.resends, "1", NOW) is False
    rows = await store.fetch(
        "SELECT original_message_id, state, reason, due_at FROM resends ORDER BY 1"
    )
    assert rows == [
        ("1", "scheduled", policy.OPERATOR_RESENT, NOW),
        ("2", "cancelled", policy.OPERATOR_DROPPED, T0),
    ]
    assert await store.operator.awaiting_decision() == []


async def test_list_events_filters(store: Store) -> None:
    """Each criterion narrows the list; newest first; keyset paging by id."""
    a = (await store.ingest(incoming(delivery(1, status=4)))).event_id
    b = (await store.ingest(incoming(delivery(2, status=6), received_at=T0 + 100))).event_id
    c = (await store.ingest(incoming(reply(9), received_at=T0 + 200))).event_id

    async def ids(**criteria: Any) -> list[int]:
        return [e.id for e in await store.operator.list_events(EventFilter(**criteria))]

    assert await ids() == [c, b, a]
    assert await ids(type="message-reply") == [c]
    assert await ids(type="delivery-status.delivered") == [a]
    assert await ids(status=6) == [b]
    assert await ids(message_id="1") == [a]
    assert await ids(number="+1 (555) 765-4321") == [c]
    assert await ids(since=T0 + 100) == [c, b]
    assert await ids(until=T0 + 100) == [a]
    assert await ids(state="dead") == []
    assert await ids(before_id=c, limit=1) == [b]


async def test_timeline_and_headline(store: Store) -> None:
    """The timeline gathers statuses, duplicates, runs and the resend; the headline
    counts the last day by type, the backlog, dead letters and resends by state."""
    event_id = await dead_letter(store, 77)
    await store.ingest(incoming(delivery(77, status=6), received_at=T0 + 1))  # a duplicate
    await store.ingest(incoming(delivery(77, status=3), received_at=T0 + 2))
    await unknown(store, "77")

    timeline = await store.operator.message_timeline("77")
    assert timeline.found
    assert [(e.event.status_name, e.event.duplicates) for e in timeline.entries] == [
        ("delivery-failed", 1),
        ("sent", 0),
    ]
    assert timeline.entries[0].event.id == event_id
    assert {r.handler: r.state for r in timeline.entries[0].runs} == {"crm": DEAD, "audit": DONE}
    assert timeline.resend is not None
    assert timeline.resend.state == "unknown"
    assert not (await store.operator.message_timeline("nope")).found

    figures = await store.operator.headline(now=T0 + 10)
    assert dict(figures.events_24h) == {"delivery-status": 2}
    assert figures.pending == 1
    assert figures.oldest_pending_age == pytest.approx(8)
    assert figures.dead_letters == 1
    assert dict(figures.resends) == {"unknown": 1}
