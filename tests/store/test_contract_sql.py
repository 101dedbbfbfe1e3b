"""The `Store` contract, continued: message state, heartbeats, migrations, the generic
``?`` SQL that receiver/fallback/resends.py and the operator code run; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from receiver.errors import StoreError
from receiver.store import ResendState, Store
from receiver.store.migrate import migrations

from ..conftest import delivery
from ..pg import opened_store
from .test_store import T0, incoming


async def test_message_state_moves_forward_only(store: Store) -> None:
    """SENT after QUEUED advances; a failure sticks against a late SENT; DELIVERED outranks
    the failure and nothing moves it back; identity fields fill in once."""
    seen = []
    for n, status in enumerate([1, 3, 6, 3, 4, 6, 2]):
        fields = {"destinationNumber": None} if n == 0 else {}
        await store.ingest(incoming(delivery(message_id=7, status=status, **fields), T0 + n))
        state = await store.message_state("7")
        assert state is not None
        seen.append(state.status)

    assert seen == [1, 3, 6, 6, 4, 4, 4]
    assert state.status_at == T0 + 4, "the time of the DELIVERED that set it"
    assert (state.first_seen, state.phone, state.sender_name) == (T0, "+15551234567", "Acme")
    assert state.status_name == "delivered"


async def test_message_state_of_an_unseen_message_is_none(store: Store) -> None:
    """`message_state` answers None for a message id the store never saw."""
    await store.ingest(incoming(delivery(message_id=1)))

    assert await store.message_state("999") is None
    assert await store.message_state("1") is not None


async def test_heartbeat_keeps_one_row_per_owner_with_the_latest_time(store: Store) -> None:
    """Heartbeats upsert: one row per owner, the last time wins."""
    await store.heartbeat("A", now=10.0)
    await store.heartbeat("B", now=11.0)
    await store.heartbeat("A", now=12.5)

    assert await store.fetch("SELECT owner, at FROM heartbeats ORDER BY owner") == [
        ("A", 12.5),
        ("B", 11.0),
    ]


async def test_migrations_apply_once_and_status_reports_them(store_url: str) -> None:
    """Unmigrated: all pending. Opened three times, twice concurrently (replicas starting
    together): each migration recorded once, and `db status` reports all applied."""
    async with opened_store(store_url, migrate=False) as bare:
        before = await bare.migration_status()
    assert before, "at least one migration ships"
    assert all(m.applied_at is None for m in before)

    async def start() -> None:
        async with opened_store(store_url):
            pass

    await asyncio.gather(start(), start())
    async with opened_store(store_url) as store:
        after = await store.migration_status()
        rows = await store.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows == [(m.version, m.name) for m in migrations(store.dialect)]
    assert [(m.version, m.applied_at is not None) for m in after] == [
        (m.version, True) for m in before
    ]


async def test_generic_sql_with_question_marks(store: Store) -> None:
    """`execute` counts changed rows, `fetch_write` returns RETURNING rows, `fetch` reads;
    a ``?`` inside a string literal is not a placeholder."""
    insert = "INSERT INTO opt_outs (phone, source, at) VALUES (?, ?, ?)"
    assert await store.execute(insert, ("1", "stop?", 1.5)) == 1
    conflict = " ON CONFLICT (account, phone) DO NOTHING"
    assert await store.execute(insert + conflict, ("1", "x", 2.0)) == 0
    assert await store.execute(insert, ("2", "reply", 2.5)) == 1

    rows = await store.fetch_write(
        "UPDATE opt_outs SET at = ? WHERE source = 'stop?' OR phone = ? RETURNING phone, at",
        (9.0, "2"),
    )
    assert sorted(rows) == [("1", 9.0), ("2", 9.0)]
    assert await store.fetch(
        "SELECT phone FROM opt_outs WHERE at > ? AND source <> '?' ORDER BY phone", (1.0,)
    ) == [("1",), ("2",)]
    assert await store.execute("DELETE FROM opt_outs WHERE phone = ?", ("9",)) == 0


async def test_a_constraint_violation_is_a_store_error(store: Store) -> None:
    """A failing statement raises `StoreError` (the driver's error translated)."""
    with pytest.raises(StoreError):
        await store.execute("INSERT INTO heartbeats (owner, at) VALUES (?, NULL)", ("bad",))
    assert await store.fetch("SELECT count(*) FROM heartbeats") == [(0,)]


async def test_resend_is_claimed_once_even_concurrently(store: Store) -> None:
    """`Resends.schedule` for one original: twice in a row, then 20 at once -> one True."""
    resends = store.resends

    async def schedule(original: str) -> bool:
        return await resends.schedule(
            original_message_id=original,
            phone="+15551230000",
            tags={"campaign": "spring"},
            original_external_id=f"order-{original}",
            failure_status=6,
            failed_at=T0,
            due_at=T0 + 30,
            now=T0,
        )

    assert [await schedule("1"), await schedule("1")] == [True, False]
    results = await asyncio.gather(*(schedule("2") for _ in range(20)))
    assert results.count(True) == 1
    resend = await resends.get("2")
    assert resend is not None
    assert (resend.state, resend.tags, resend.double_delivery) == (
        "scheduled",
        {"campaign": "spring"},
        False,
    )
    assert await resends.original_delivered("2", T0 + 1) == "cancelled"


async def test_a_delivery_to_another_recipient_leaves_the_resend_alone(store: Store) -> None:
    """One send, several recipients, one messageId: a DELIVERED to one recipient neither
    cancels nor marks the resend of another, and `delivered_to` tells them apart."""
    resends = store.resends
    assert await resends.schedule(
        original_message_id="9",
        phone="+15550000001",
        tags={},
        original_external_id=None,
        failure_status=6,
        failed_at=T0,
        due_at=T0 + 30,
        now=T0,
    )
    assert await resends.original_delivered("9", T0 + 1, "+15550000002") is None
    assert (await resends.get("9")).state == "scheduled"  # type: ignore[union-attr]
    await store.ingest(incoming(delivery(9, 4, destinationNumber="+15550000002")))
    assert await resends.delivered_to("9", "+15550000002")
    assert not await resends.delivered_to("9", "+15550000001")
    assert await resends.original_delivered("9", T0 + 2, "+15550000001") == "cancelled"


async def test_deliveries_handled_together_answer_as_one_by_one(store: Store) -> None:
    """`original_delivered` calls made together (one claimed batch's handlers; PostgreSQL
    runs them as one statement) answer what they answer one after the other: cancelled,
    a double delivery marked once, another recipient's resend left alone, a second
    DELIVERED of one original seeing the first one's effect."""
    resends = store.resends
    for original, phone in [("a", "+15550000001"), ("b", None), ("c", "+15550000001")]:
        assert await resends.schedule(
            original_message_id=original,
            phone=phone,
            tags={},
            original_external_id=None,
            failure_status=6,
            failed_at=T0,
            due_at=T0 + 30,
            now=T0,
        )
    assert await resends.transition("b", ResendState.SENT, from_=[ResendState.SCHEDULED], now=T0)

    outcomes = await asyncio.gather(
        resends.original_delivered("a", T0 + 1, "+15550000001"),
        resends.original_delivered("b", T0 + 1),
        resends.original_delivered("b", T0 + 2),
        resends.original_delivered("c", T0 + 1, "+15550000002"),
        resends.original_delivered("c", T0 + 2, "+15550000001"),
        resends.original_delivered("c", T0 + 3, "+15550000001"),
        resends.original_delivered("none", T0 + 1),
    )

    assert outcomes == ["cancelled", "double_delivery", None, None, "cancelled", None, None]
    states = {r: await resends.get(r) for r in "abc"}
    assert [(s.state, s.double_delivery, s.updated_at) for s in states.values() if s] == [
        ("cancelled", False, T0 + 1),
        ("sent", True, T0 + 1),
        ("cancelled", False, T0 + 2),
    ]
