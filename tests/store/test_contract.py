"""The `Store` contract: one suite, run against SQLite and PostgreSQL.

Everything is checked through the port itself (``store.fetch`` with ``?`` placeholders),
so the same assertions hold on both backends. SQLite-only mechanics (the writer,
WAL, group commit) are in tests/test_store.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from receiver import Context, Event, Registry
from receiver.dispatch.dispatcher import Dispatcher
from receiver.errors import StoreError
from receiver.metrics import Metrics
from receiver.mta.statuses import rank
from receiver.store import (
    DEAD,
    DONE,
    FAILED,
    PENDING,
    QUARANTINED,
    Completion,
    HandlerRun,
    Incoming,
    Store,
)
from receiver.web.intake import incoming_from

from ..conftest import delivery, make_settings
from ..pg import empty_database, opened_store
from .test_store import LEASE, NOW, T0, incoming, reply


async def test_ingest_returns_a_new_id_then_counts_duplicates(store: Store) -> None:
    """The first ingest of a dedup key is new; repeats return its id and bump `duplicates`."""
    first = await store.ingest(incoming(delivery(status=4)))
    again = await store.ingest(incoming(delivery(status=4), received_at=T0 + 5))
    third = await store.ingest(incoming(delivery(status=4), received_at=T0 + 9))
    other = await store.ingest(incoming(delivery(status=3)))

    assert first.duplicate is False
    assert (again.event_id, again.duplicate) == (first.event_id, True)
    assert (third.event_id, third.duplicate) == (first.event_id, True)
    assert (other.duplicate, other.event_id != first.event_id) == (False, True)
    rows = await store.fetch("SELECT id, received_at, duplicates FROM events ORDER BY id")
    assert rows == [(first.event_id, T0, 2), (other.event_id, T0, 0)]


async def test_concurrent_distinct_ingests_all_commit(store: Store) -> None:
    """200 concurrent ingests of distinct events: 200 rows, 200 distinct ids, none duplicate."""
    results = await asyncio.gather(
        *(store.ingest(incoming(delivery(message_id=n))) for n in range(1, 201))
    )

    assert len({r.event_id for r in results}) == 200
    assert not any(r.duplicate for r in results)
    assert await store.fetch("SELECT count(*) FROM events") == [(200,)]


async def test_concurrent_identical_ingests_store_one_row(store: Store) -> None:
    """50 concurrent copies of one event: exactly one is new, all share its id."""
    results = await asyncio.gather(*(store.ingest(incoming()) for _ in range(50)))

    assert [r.duplicate for r in results].count(False) == 1
    assert len({r.event_id for r in results}) == 1
    assert await store.fetch("SELECT count(*), max(duplicates) FROM events") == [(1, 49)]


async def test_committed_ingest_is_visible_to_another_store(store: Store, store_url: str) -> None:
    """When `ingest` returns, the row is committed: a second store on the URL reads it."""
    sent = incoming(delivery(message_id=4242, status=4))
    result = await store.ingest(sent)

    async with opened_store(store_url, migrate=False) as other:
        [(event_id, key, state, body)] = await other.fetch(
            "SELECT id, dedup_key, state, body FROM events"
        )
        message = await other.message_state("4242")
    assert (event_id, key, state, bytes(body)) == (
        result.event_id,
        sent.dedup_key,
        PENDING,
        sent.body,
    )
    assert message is not None
    assert message.status == 4


async def test_claim_keeps_receipt_order_per_message(store: Store) -> None:
    """Only the oldest pending event of a message is claimable; NULL message ids never block."""
    queued = await store.ingest(incoming(delivery(message_id=1, status=1)))
    sent = await store.ingest(incoming(delivery(message_id=1, status=3)))
    other = await store.ingest(incoming(delivery(message_id=2, status=3)))
    reply_a = await store.ingest(incoming(reply(71)))
    reply_b = await store.ingest(incoming(reply(72)))

    claimed = await store.claim("A", 10, LEASE, now=NOW)
    assert [c.id for c in claimed] == [
        queued.event_id,
        other.event_id,
        reply_a.event_id,
        reply_b.event_id,
    ]
    assert [c.message_id for c in claimed] == ["1", "2", None, None]
    assert await store.claim("B", 10, LEASE, now=NOW + 1) == []

    expired = await store.claim("B", 10, LEASE, now=NOW + LEASE + 1)
    assert [c.id for c in expired] == [c.id for c in claimed], (
        "SENT still waits while QUEUED is pending, even once QUEUED's lease has expired"
    )
    await store.complete("B", [Completion(c.id, DONE, NOW, ()) for c in expired], now=NOW)
    after = await store.claim("C", 10, LEASE, now=NOW + LEASE + 1)
    assert [c.id for c in after] == [sent.event_id]


async def test_event_waiting_for_its_retry_still_blocks_later_events(store: Store) -> None:
    """An event back in `pending` with a future run_after keeps later events of its message."""
    first = await store.ingest(incoming(delivery(message_id=5, status=1)))
    second = await store.ingest(incoming(delivery(message_id=5, status=4)))
    [claimed] = await store.claim("A", 10, LEASE, now=NOW)
    await store.complete("A", [Completion(claimed.id, PENDING, NOW + 60, ())], now=NOW)

    assert await store.claim("A", 10, LEASE, now=NOW + 1) == []
    [retried] = await store.claim("A", 10, LEASE, now=NOW + 60)
    assert retried.id == first.event_id
    await store.complete("A", [Completion(first.event_id, DEAD, NOW + 60, ())], now=NOW + 60)
    [next_one] = await store.claim("A", 10, LEASE, now=NOW + 60)
    assert next_one.id == second.event_id, "a dead-lettered event no longer blocks its message"


async def test_claim_takes_at_most_limit_oldest_first_and_not_before_due(store: Store) -> None:
    """`claim` leases no more than `limit` due events, the oldest ids first."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in range(1, 6)]

    assert await store.claim("A", 10, LEASE, now=T0 - 1) == []
    first = await store.claim("A", 2, LEASE, now=NOW)
    rest = await store.claim("B", 10, LEASE, now=NOW)

    assert [c.id for c in first] == ids[:2]
    assert [c.id for c in rest] == ids[2:]


async def test_concurrent_claims_never_lease_an_event_twice(store: Store) -> None:
    """Eight owners claiming at once split 60 events (20 messages x 3) without overlap,
    and never hold two events of one message at the same time."""
    for status in (1, 3, 4):
        for message in range(20):
            await store.ingest(incoming(delivery(message_id=message, status=status)))

    seen: list[tuple[int, str | None]] = []
    while True:
        batches = await asyncio.gather(*(store.claim(f"w{n}", 4, LEASE, now=NOW) for n in range(8)))
        claimed = [c for batch in batches for c in batch]
        if not claimed:
            break
        ids = [c.id for c in claimed]
        assert len(ids) == len(set(ids)), "one event leased to two owners"
        messages = [c.message_id for c in claimed]
        assert len(messages) == len(set(messages)), "two events of one message at once"
        seen += [(c.id, c.message_id) for c in claimed]
        for n, batch in enumerate(batches):
            await store.complete(f"w{n}", [Completion(c.id, DONE, NOW, ()) for c in batch], NOW)
    assert len(seen) == 60
    assert len({event_id for event_id, _ in seen}) == 60
    for message in {m for _, m in seen}:
        order = [event_id for event_id, m in seen if m == message]
        assert order == sorted(order), f"message {message} handled out of receipt order"


async def test_lease_blocks_other_owners_until_it_expires(store: Store) -> None:
    """Owner A's lease keeps B out until `now` passes lease_until; then B gets the event."""
    event = await store.ingest(incoming())
    [mine] = await store.claim("A", 10, LEASE, now=NOW)

    assert mine.id == event.event_id
    assert await store.fetch("SELECT lease_owner, lease_until FROM events") == [("A", NOW + LEASE)]
    assert await store.claim("B", 10, LEASE, now=NOW + LEASE) == []
    [taken] = await store.claim("B", 10, LEASE, now=NOW + LEASE + 0.5)
    assert taken.id == event.event_id
    assert await store.fetch("SELECT lease_owner FROM events") == [("B",)]


async def test_renew_extends_only_the_listed_leases_of_the_owner(store: Store) -> None:
    """`renew(A, ids)` moves the lease_until of A's listed events; A's unlisted event and
    B's event (listed, but not A's) keep theirs."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in (1, 2, 3)]
    await store.claim("A", 2, LEASE, now=NOW)
    await store.claim("B", 1, LEASE, now=NOW)

    await store.renew("A", NOW + 500, [ids[0], ids[2]])
    await store.renew("A", NOW + 900, [])

    rows = await store.fetch("SELECT lease_owner, lease_until FROM events ORDER BY id")
    assert rows == [("A", NOW + 500), ("A", NOW + LEASE), ("B", NOW + LEASE)]


async def test_completion_by_a_former_owner_is_ignored(store: Store) -> None:
    """A's late `complete` after B took over changes neither the event nor B's runs."""
    event = await store.ingest(incoming())
    await store.claim("A", 10, LEASE, now=NOW)
    await store.claim("B", 10, LEASE, now=NOW + LEASE + 1)
    await store.complete("A", [Completion(event.event_id, DONE, NOW, ())], now=NOW + LEASE + 2)
    assert await store.fetch("SELECT state, lease_owner FROM events") == [(PENDING, "B")]

    ok = HandlerRun("h", DONE, 1)
    await store.complete("B", [Completion(event.event_id, DONE, NOW, (ok,))], now=NOW + 40)
    failed = HandlerRun("h", FAILED, 1, "h: TimeoutError: slow")
    stale = Completion(event.event_id, PENDING, NOW + 50, (failed,), failed.last_error)
    await store.complete("A", [stale], now=NOW + 41)

    assert await store.fetch("SELECT state FROM events") == [(DONE,)]
    assert await store.fetch("SELECT handler, state FROM handler_runs") == [("h", DONE)]


async def test_release_makes_an_owners_work_claimable_at_once(store: Store) -> None:
    """`release(A)` drops A's leases (not B's): another owner claims them without waiting."""
    mine = await store.ingest(incoming(delivery(message_id=1)))
    theirs = await store.ingest(incoming(delivery(message_id=2)))
    await store.claim("A", 1, LEASE, now=NOW)
    await store.claim("B", 1, LEASE, now=NOW)
    assert await store.claim("C", 10, LEASE, now=NOW) == []

    await store.release("A")

    assert [c.id for c in await store.claim("C", 10, LEASE, now=NOW)] == [mine.event_id]
    owners = await store.fetch("SELECT id, lease_owner FROM events ORDER BY id")
    assert owners == [(mine.event_id, "C"), (theirs.event_id, "B")]


async def test_release_of_listed_events_keeps_the_owners_others(store: Store) -> None:
    """`release(A, ids)` drops A's leases on ``ids`` only (an id A does not hold is
    ignored); `release(A, [])` drops none."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in (1, 2, 3)]
    await store.claim("A", 2, LEASE, now=NOW)
    await store.claim("B", 1, LEASE, now=NOW)

    await store.release("A", [ids[1], ids[2]])
    await store.release("A", [])

    owners = await store.fetch("SELECT lease_owner FROM events ORDER BY id")
    assert owners == [("A",), (None,), ("B",)]


async def test_complete_records_handler_runs_and_the_next_state(store: Store) -> None:
    """`complete` stores each run, the event's state, attempts, error and frees the lease."""
    event = await store.ingest(incoming())
    await store.claim("A", 10, LEASE, now=NOW)
    runs = (HandlerRun("good", DONE, 1), HandlerRun("bad", FAILED, 1, "bad: KeyError: 'x'"))

    await store.complete("A", [Completion(event.event_id, PENDING, NOW + 5, runs, "bad")], now=NOW)

    assert await store.fetch(
        "SELECT state, attempts, run_after, last_error, lease_owner, finished_at FROM events"
    ) == [(PENDING, 1, NOW + 5, "bad", None, None)]
    [again] = await store.claim("A", 10, LEASE, now=NOW + 5)
    assert again.attempts == 1
    assert again.runs == {r.handler: r for r in runs}

    fixed = HandlerRun("bad", DONE, 2)
    await store.complete("A", [Completion(event.event_id, DONE, NOW + 6, (fixed,))], now=NOW + 6)
    assert await store.fetch("SELECT state, attempts, last_error, finished_at FROM events") == [
        (DONE, 2, None, NOW + 6)
    ]
    runs_now = await store.fetch("SELECT handler, state, attempts FROM handler_runs ORDER BY 1")
    assert runs_now == [("bad", DONE, 2), ("good", DONE, 1)]
    assert await store.claim("A", 10, LEASE, now=NOW + 1_000) == []


async def test_quarantined_events_are_kept_but_never_claimed(store: Store) -> None:
    """An authentic but unreadable body is stored as quarantined and never leased."""
    kept = Incoming(
        dedup_key="q:deadbeef",
        type="unknown",
        name="quarantined",
        received_at=T0,
        secret_index=0,
        body=b"{not json",
        state=QUARANTINED,
        error="invalid_json",
    )
    assert (await store.ingest(kept)).duplicate is False
    assert await store.claim("A", 10, LEASE, now=NOW) == []
    [(state, error, body)] = await store.fetch("SELECT state, last_error, body FROM events")
    assert (state, error, bytes(body)) == (QUARANTINED, "invalid_json", b"{not json")


async def test_one_batch_counts_duplicates_and_moves_a_message_forward(store: Store) -> None:
    """Webhooks ingested together (one loop iteration) land as if one by one: copies of
    one event, in the batch or already stored, are duplicates of one row, and a message
    takes the highest-ranked status (4 outranks 6, 3 and 1) and keeps its first sighting."""
    stored = await store.ingest(incoming(delivery(55, status=3), received_at=T0 + 1))
    statuses = [(3, T0 + 2), (6, T0 + 5), (4, T0 + 20), (6, T0 + 30), (1, T0 + 3)]
    results = await asyncio.gather(
        *(store.ingest(incoming(delivery(55, status=s), received_at=at)) for s, at in statuses),
        store.ingest(incoming(delivery(56, status=1), received_at=T0 + 4)),
        store.ingest(incoming(delivery(56, status=3), received_at=T0 + 6)),
    )

    assert (results[0].event_id, results[0].duplicate) == (stored.event_id, True)
    assert [r.duplicate for r in results[1:]] == [False, False, True, False, False, False]
    assert results[3].event_id == results[1].event_id
    assert await store.fetch(
        "SELECT status, duplicates FROM events WHERE message_id = '55' ORDER BY status"
    ) == [(1, 0), (3, 1), (4, 0), (6, 1)]
    assert rank(4) > rank(6) > rank(3) > rank(1)
    message = await store.message_state("55")
    assert message is not None
    assert (message.status, message.status_at, message.first_seen) == (4, T0 + 20, T0 + 1)
    other = await store.message_state("56")
    assert other is not None
    assert (other.status, other.status_at, other.first_seen) == (3, T0 + 6, T0 + 4)


async def test_one_batch_takes_each_identity_field_from_the_first_event_that_has_it(
    store: Store,
) -> None:
    """A message's phone, externalId and senderName come from the first webhook of the
    batch that carries each, as if the webhooks had landed one by one; its status is the
    highest-ranked and its first sighting the first webhook's."""
    bare = delivery(88, status=1)
    for field in ("destinationNumber", "externalId", "senderName"):
        del bare[field]
    first = delivery(88, status=3, destinationNumber="+15551230001", externalId="first")
    del first["senderName"]
    last = delivery(88, status=6, destinationNumber="+15551230002", externalId="second",
                    senderName="Brand")  # fmt: skip
    await asyncio.gather(
        store.ingest(incoming(bare, received_at=T0 + 2)),
        store.ingest(incoming(first, received_at=T0 + 5)),
        store.ingest(incoming(last, received_at=T0 + 9)),
    )

    message = await store.message_state("88")
    assert message is not None
    assert (message.phone, message.external_id, message.sender_name) == (
        "+15551230001",
        "first",
        "Brand",
    )
    assert (message.status, message.status_at, message.first_seen) == (6, T0 + 9, T0 + 2)


async def test_a_bad_webhook_in_a_batch_fails_only_itself(store: Store) -> None:
    """One webhook the database refuses, ingested with others: only it fails."""
    bad = incoming(delivery(1))._replace(dedup_key=None)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(store.ingest(incoming(delivery(n))) for n in range(2, 6)),
        store.ingest(bad),
        return_exceptions=True,
    )

    assert isinstance(results[-1], StoreError)
    assert not any(isinstance(r, BaseException) or r.duplicate for r in results[:-1])
    assert await store.fetch("SELECT count(*) FROM events") == [(4,)]
    assert await store.fetch("SELECT count(*) FROM messages") == [(4,)]


@pytest.mark.postgres
async def test_postgres_claim_after_a_flood_is_not_stuck_on_an_old_plan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims run while few events are pending, then 100,000 arrive: the next claim ends,
    and a slow claim refreshes the planner's statistics (ANALYZE), once.

    PostgreSQL keeps a generic plan made on the small table (a sort of every pending
    event, probed one by one); without events_pending_message each probe read every
    pending entry below it and one claim ran for minutes (bench/ingest.py). The
    deadline is a hang detector, not a speed target. After the flood any
    claim counts as slow, so the test does not depend on this machine's speed."""
    asyncpg = pytest.importorskip("asyncpg")
    from receiver.store.postgres import PostgresStore

    insert = (
        "INSERT INTO events (dedup_key, type, name, message_id, received_at, secret_index,"
        " body, state, run_after) SELECT 'k' || n, 'delivery-status', 'x', n::text, 0, 0,"
        " '\\x7b7d'::bytea, $3, 0 FROM generate_series($1::int, $2::int) n"
    )
    analyzed = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'"
    async with empty_database("postgres", tmp_path) as url:
        store = PostgresStore(url, min_size=1, max_size=1, slow_claim_seconds=float("inf"))
        await store.open()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(insert, 1, 2000, DONE)
            for n in range(2001, 2013):  # a generic plan is considered after five runs
                await conn.execute(insert, n, n, PENDING)
                [claimed] = await store.claim("w", 16, LEASE, now=NOW)
                await conn.execute("UPDATE events SET state = $1 WHERE id = $2", DONE, claimed.id)
            await conn.execute(insert, 3001, 103000, PENDING)
            assert not await conn.fetchval(analyzed)
            store.statistics.slow_claim_seconds = 0.0  # from now on every claim is slow
            flood = await asyncio.wait_for(store.claim("w", 16, LEASE, now=NOW), 10)
            after = await asyncio.wait_for(store.claim("w", 16, LEASE, now=NOW), 10)
            was_analyzed = await conn.fetchval(analyzed)
        finally:
            await conn.close()
            await store.close()
    assert [event.id for event in flood] == list(range(2013, 2029))
    assert [event.id for event in after] == list(range(2029, 2045))
    assert was_analyzed
    warnings = [r for r in caplog.records if "running ANALYZE events" in r.getMessage()]
    assert len(warnings) == 1, "at most one ANALYZE per ANALYZE_EVERY_SECONDS"


@pytest.mark.postgres
async def test_postgres_claim_stays_a_per_row_probe_without_statistics(tmp_path: Path) -> None:
    """On a never-analyzed `events` table with a backlog, the worker's claim checks each
    candidate's earlier events through a subplan, never an anti-join over every pending
    row (seen taking 23 s per claim with 130,000 pending, bench/ingest.py)."""
    asyncpg = pytest.importorskip("asyncpg")
    from receiver.store.postgres import statements as pg_sql

    async with empty_database("postgres", tmp_path) as url, opened_store(url):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO events (dedup_key, type, name, message_id, received_at,"
                " secret_index, body, state, run_after)"
                " SELECT 'k' || n, 'delivery-status', 'delivery-status.delivered', n::text,"
                " 0, 0, '\\x7b7d'::bytea, 'pending', 0 FROM generate_series(1, 20000) n"
            )
            plan = "\n".join(
                row[0]
                for row in await conn.fetch("EXPLAIN " + pg_sql.LEASE, "w", 1.0, 1.0, 1.0, 16)
            )
        finally:
            await conn.close()
    assert "SubPlan" in plan, plan
    assert "Anti Join" not in plan, plan


async def test_odd_but_authentic_identity_fields_are_stored(store: Store) -> None:
    """What SQLite would take and PostgreSQL refuse (a status past a 4-byte integer, NUL
    in text) is stored on both: such a webhook is answered 200, never 503 forever."""
    body = json.dumps(
        {
            "type": "delivery-status",
            "messageId": "a\u0000b",
            "status": 2**40,
            "destinationNumber": "+1555\u00001234",
            "senderName": "x\u0000",
        }
    ).encode()

    result = await store.ingest(incoming_from(body, NOW, 0))

    assert not result.duplicate
    rows = await store.fetch("SELECT message_id, status, phone FROM events")
    assert rows == [("a\\u0000b", None, "+15551234")]  # the number normalised to E.164


async def test_one_batch_keeps_receipt_order_per_message(store: Store) -> None:
    """Webhooks of one message committed in one batch get ids in arrival order (the
    worker's receipt order), though PostgreSQL inserts them sorted by dedup key."""
    arrivals = [
        {"messageId": 88, "externalId": "order-88", "type": "message-send"},
        delivery(message_id=88, status=10),
        delivery(message_id=88, status=2),
    ]
    results = await asyncio.gather(*(store.ingest(incoming(p)) for p in arrivals))

    ids = [r.event_id for r in results]
    assert ids == sorted(ids)
    claimed = []
    for _ in arrivals:
        [event] = await store.claim("w", 10, LEASE, now=NOW)
        claimed.append(event.id)
        await store.complete("w", [Completion(event.id, DONE, NOW, ())], now=NOW)
    assert claimed == ids


async def test_a_handler_error_with_nul_is_recorded(store: Store) -> None:
    """A handler's error text holding NUL (PostgreSQL's text refuses it) is recorded and
    the event dead-lettered, not left pending for ever because `complete` failed."""
    registry = Registry()

    @registry.on("delivery-status")
    async def quoting(event: Event, ctx: Context) -> None:
        raise ValueError("bad url a\x00b")

    await store.ingest(incoming())
    [claimed] = await store.claim("w", 10, LEASE, now=NOW)
    settings = make_settings(Path("/nonexistent"), max_attempts=1)
    dispatcher = Dispatcher(registry, store, settings, Metrics(), jitter=lambda: 0.0)
    completion = await dispatcher.run(claimed)
    await store.complete("w", [completion], now=NOW)

    [(state, last_error)] = await store.fetch("SELECT state, last_error FROM events")
    assert state == DEAD
    assert last_error.endswith("ValueError: bad url a\\u0000b")
