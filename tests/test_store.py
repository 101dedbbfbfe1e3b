"""The SQLite store on a real file: ingest, group commit, claims, leases, durability."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import StoreError
from receiver.events import dedup_key, normalize
from receiver.statuses import rank
from receiver.store import (
    DEAD,
    DONE,
    FAILED,
    PENDING,
    QUARANTINED,
    Completion,
    HandlerRun,
    Incoming,
)
from receiver.store.migrate import Migration, migrations
from receiver.store.sqlite import SqliteStore
from receiver.store.writer import Writer, connect

from .conftest import delivery, encode

T0 = 1_000.0  # received_at of test events; claims run at NOW, well after
NOW = 2_000.0
LEASE = 30.0


def reply(reply_id: int, **fields: Any) -> dict[str, Any]:
    """A message-reply payload: it carries no messageId."""
    body: dict[str, Any] = {
        "fromNumber": "+15557654321",
        "toNumber": "+15550000000",
        "message": "STOP",
        "replyId": reply_id,
        "type": "message-reply",
    }
    body.update(fields)
    return body


def incoming(payload: dict[str, Any] | None = None, received_at: float = T0) -> Incoming:
    """An `Incoming` built from a payload exactly as receiver/intake.py builds it."""
    payload = delivery() if payload is None else payload
    body = encode(payload)
    event = normalize(payload, received_at)
    return Incoming(
        dedup_key=dedup_key(event, body),
        type=event.type,
        name=event.name,
        received_at=received_at,
        secret_index=0,
        body=body,
        message_id=event.message_id,
        status=event.status,
        status_rank=rank(event.status),
        external_id=event.external_id,
        phone=event.phone,
        sender_name=event.sender_name,
    )


async def eventually(condition: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``condition`` (sync or async) without blocking the loop; fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {condition}")
        await asyncio.sleep(0.005)


def db_path(store: SqliteStore) -> str:
    """The file behind a store."""
    return store.path


def query(path: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database through a connection of its own (not the store's)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store on a fresh file."""
    opened = SqliteStore(f"sqlite:///{tmp_path / 'store.db'}")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_ingest_returns_a_new_id_then_counts_duplicates(store: SqliteStore) -> None:
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


async def test_concurrent_ingests_all_commit_in_fewer_transactions(store: SqliteStore) -> None:
    """200 concurrent ingests all commit with distinct ids, grouped into fewer commits."""
    commits_before = store.commits

    results = await asyncio.gather(
        *(store.ingest(incoming(delivery(message_id=n))) for n in range(1, 201))
    )

    assert len({r.event_id for r in results}) == 200
    assert not any(r.duplicate for r in results)
    assert query(db_path(store), "SELECT count(*) FROM events") == [(200,)]
    assert store.commits - commits_before < 200


async def test_failing_statement_fails_alone_among_concurrent_ingests(store: SqliteStore) -> None:
    """A write that violates a constraint raises StoreError; concurrent ingests still commit."""
    jobs = [store.ingest(incoming(delivery(message_id=n))) for n in range(10)]
    bad = store.execute("INSERT INTO heartbeats (owner, at) VALUES (?, NULL)", ("bad",))
    jobs += [store.ingest(incoming(delivery(message_id=n))) for n in range(10, 20)]

    outcomes = await asyncio.gather(jobs[0], bad, *jobs[1:], return_exceptions=True)

    assert isinstance(outcomes[1], StoreError)
    good = [o for i, o in enumerate(outcomes) if i != 1]
    assert not any(isinstance(o, BaseException) for o in good)
    assert query(db_path(store), "SELECT count(*) FROM events") == [(20,)]
    assert query(db_path(store), "SELECT count(*) FROM heartbeats") == [(0,)]


async def test_writer_rolls_back_a_failing_job_inside_a_shared_transaction(
    tmp_path: Path,
) -> None:
    """In one group commit, a job that wrote then raised is undone; its neighbours commit."""
    writer = Writer(str(tmp_path / "writer.db"))
    writer.start()
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER UNIQUE)"))
        entered, release = threading.Event(), threading.Event()

        def gate(conn: sqlite3.Connection) -> None:
            entered.set()
            release.wait(5)

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (-1)")
            raise RuntimeError("handler bug after a write")

        gated = asyncio.ensure_future(writer.run(gate))
        await eventually(entered.is_set)
        commits = writer.commits
        jobs = [
            *(
                writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
                for n in range(5)
            ),
            writer.run(half_then_fail),
            *(
                writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
                for n in range(5, 10)
            ),
        ]
        pending = asyncio.gather(*jobs, return_exceptions=True)
        await asyncio.sleep(0)  # let every job reach the queue while the gate holds the writer
        release.set()
        outcomes = await pending
        await gated

        assert [type(o) for o in outcomes].count(RuntimeError) == 1
        assert writer.commits - commits == 2, "the gate's commit, then one for all 11 jobs"
        rows = await writer.run(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall())
        assert rows == [(n,) for n in range(10)]
    finally:
        writer.stop()


async def test_claim_keeps_receipt_order_per_message(store: SqliteStore) -> None:
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


async def test_event_waiting_for_its_retry_still_blocks_later_events(store: SqliteStore) -> None:
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


async def test_claim_takes_at_most_limit_oldest_first(store: SqliteStore) -> None:
    """`claim` leases no more than `limit` events, the oldest ids first."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in range(1, 6)]

    first = await store.claim("A", 2, LEASE, now=NOW)
    rest = await store.claim("B", 10, LEASE, now=NOW)

    assert [c.id for c in first] == ids[:2]
    assert [c.id for c in rest] == ids[2:]


async def test_events_are_not_claimable_before_run_after(store: SqliteStore) -> None:
    """A new event becomes due at its receipt time, not before."""
    await store.ingest(incoming(delivery(), received_at=T0))

    assert await store.claim("A", 10, LEASE, now=T0 - 1) == []
    assert len(await store.claim("A", 10, LEASE, now=T0)) == 1


async def test_lease_blocks_other_owners_until_it_expires(store: SqliteStore) -> None:
    """Owner A's lease keeps B out until `now` passes lease_until; then B gets the event."""
    event = await store.ingest(incoming())
    [mine] = await store.claim("A", 10, LEASE, now=NOW)

    assert mine.id == event.event_id
    assert query(db_path(store), "SELECT lease_owner, lease_until FROM events") == [
        ("A", NOW + LEASE)
    ]
    assert await store.claim("B", 10, LEASE, now=NOW + 1) == []
    assert await store.claim("B", 10, LEASE, now=NOW + LEASE) == []
    [taken] = await store.claim("B", 10, LEASE, now=NOW + LEASE + 0.5)
    assert taken.id == event.event_id
    assert query(db_path(store), "SELECT lease_owner FROM events") == [("B",)]


async def test_completion_by_an_owner_who_lost_the_lease_does_not_finish_the_event(
    store: SqliteStore,
) -> None:
    """A's late `complete` after B took the event over leaves B's lease and state alone."""
    event = await store.ingest(incoming())
    await store.claim("A", 10, LEASE, now=NOW)
    await store.claim("B", 10, LEASE, now=NOW + LEASE + 1)

    await store.complete("A", [Completion(event.event_id, DONE, NOW, ())], now=NOW + LEASE + 2)

    assert query(db_path(store), "SELECT state, lease_owner FROM events") == [(PENDING, "B")]


async def test_late_completion_by_a_former_owner_records_no_handler_runs(
    store: SqliteStore,
) -> None:
    """Once B finished the event, A's stale `complete` must not rewrite B's handler runs."""
    event = await store.ingest(incoming())
    await store.claim("A", 10, LEASE, now=NOW)
    await store.claim("B", 10, LEASE, now=NOW + LEASE + 1)
    ok = HandlerRun("h", DONE, 1)
    await store.complete("B", [Completion(event.event_id, DONE, NOW, (ok,))], now=NOW + 40)

    failed = HandlerRun("h", FAILED, 1, "h: TimeoutError: slow")
    stale = Completion(event.event_id, PENDING, NOW + 50, (failed,), failed.last_error)
    await store.complete("A", [stale], now=NOW + 41)

    assert query(db_path(store), "SELECT state FROM events") == [(DONE,)]
    assert query(db_path(store), "SELECT handler, state FROM handler_runs") == [("h", DONE)]


async def test_release_makes_an_owners_work_claimable_at_once(store: SqliteStore) -> None:
    """`release(A)` drops A's leases (not B's): another owner claims them without waiting."""
    mine = await store.ingest(incoming(delivery(message_id=1)))
    theirs = await store.ingest(incoming(delivery(message_id=2)))
    await store.claim("A", 1, LEASE, now=NOW)
    await store.claim("B", 1, LEASE, now=NOW)
    assert await store.claim("C", 10, LEASE, now=NOW) == []

    await store.release("A")

    assert [c.id for c in await store.claim("C", 10, LEASE, now=NOW)] == [mine.event_id]
    owners = query(db_path(store), "SELECT id, lease_owner FROM events ORDER BY id")
    assert owners == [(mine.event_id, "C"), (theirs.event_id, "B")]


async def test_complete_records_handler_runs_and_the_next_state(store: SqliteStore) -> None:
    """`complete` stores each run, the event's state, attempts, error and frees the lease."""
    event = await store.ingest(incoming())
    await store.claim("A", 10, LEASE, now=NOW)
    runs = (HandlerRun("good", DONE, 1), HandlerRun("bad", FAILED, 1, "bad: KeyError: 'x'"))

    await store.complete("A", [Completion(event.event_id, PENDING, NOW + 5, runs, "bad")], now=NOW)

    assert query(
        db_path(store),
        "SELECT state, attempts, run_after, last_error, lease_owner, finished_at FROM events",
    ) == [(PENDING, 1, NOW + 5, "bad", None, None)]
    assert query(
        db_path(store),
        "SELECT handler, state, attempts, last_error, updated_at FROM handler_runs ORDER BY 1",
    ) == [("bad", FAILED, 1, "bad: KeyError: 'x'", NOW), ("good", DONE, 1, None, NOW)]

    [again] = await store.claim("A", 10, LEASE, now=NOW + 5)
    assert again.attempts == 1
    assert again.runs == {r.handler: r for r in runs}

    fixed = HandlerRun("bad", DONE, 2)
    await store.complete("A", [Completion(event.event_id, DONE, NOW + 6, (fixed,))], now=NOW + 6)
    assert query(db_path(store), "SELECT state, attempts, last_error, finished_at FROM events") == [
        (DONE, 2, None, NOW + 6)
    ]
    runs_now = query(db_path(store), "SELECT handler, state, attempts FROM handler_runs ORDER BY 1")
    assert runs_now == [("bad", DONE, 2), ("good", DONE, 1)]
    assert await store.claim("A", 10, LEASE, now=NOW + 1_000) == []


async def test_quarantined_events_are_kept_but_never_claimed(store: SqliteStore) -> None:
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
    result = await store.ingest(kept)

    assert result.duplicate is False
    assert await store.claim("A", 10, LEASE, now=NOW) == []
    assert query(db_path(store), "SELECT state, last_error, body FROM events") == [
        (QUARANTINED, "invalid_json", b"{not json")
    ]


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    """Opening the same database again applies nothing twice: one row per migration."""
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    for _ in range(3):
        opened = SqliteStore(url)
        await opened.open()
        await opened.close()

    rows = query(str(tmp_path / "twice.db"), "SELECT version, name FROM schema_migrations")
    expected = [(m.version, m.name) for m in migrations("sqlite")]
    assert expected, "at least one migration ships"
    assert rows == expected


def run_statements(migration: Migration) -> list[tuple[Any, ...]]:
    """Apply a migration's statements to an in-memory database; return its schema names."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        for statement in migration.statements():
            conn.execute(statement)
        return conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()


def test_migration_statements_ignore_semicolons_in_comment_lines() -> None:
    """A `;` in a `--` comment line does not cut a migration into broken statements."""
    migration = Migration(
        99,
        "comment",
        "-- Numbers that opted out (status 11 or a STOP reply); an opt-in removes the row.\n"
        "CREATE TABLE t (x INTEGER);\n"
        "  -- indented; too\n"
        "CREATE INDEX t_x ON t (x);\n",
    )

    assert run_statements(migration) == [("t",), ("t_x",)]


def test_migration_statements_ignore_semicolons_in_trailing_comments() -> None:
    """A `;` in a comment after code on the same line does not split the statement."""
    migration = Migration(
        99,
        "trailing",
        "CREATE TABLE t (\n    x INTEGER, -- pending; done\n    y TEXT\n);\n",
    )

    assert run_statements(migration) == [("t",)]


async def test_database_is_in_wal_mode_with_full_synchronous(store: SqliteStore) -> None:
    """The file stays in WAL mode; every receiver connection fsyncs each commit (FULL=2)."""
    assert query(db_path(store), "PRAGMA journal_mode") == [("wal",)]
    with contextlib.closing(connect(db_path(store))) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)


async def test_committed_ingest_is_visible_to_another_connection(store: SqliteStore) -> None:
    """When `ingest` returns, the row is committed: a separate connection reads it at once."""
    result = await store.ingest(incoming(delivery(message_id=4242, status=4)))

    rows = query(
        db_path(store), "SELECT id, dedup_key, state FROM events WHERE id = ?", (result.event_id,)
    )
    assert rows == [(result.event_id, "ds:4242:4:+15551234567", PENDING)]
    assert query(db_path(store), "SELECT message_id, status FROM messages") == [("4242", 4)]


async def test_message_state_of_an_unseen_message_is_none(store: SqliteStore) -> None:
    """`message_state` answers None for a message id the store never saw."""
    await store.ingest(incoming(delivery(message_id=1)))

    assert await store.message_state("999") is None
    assert (await store.message_state("1")) is not None
