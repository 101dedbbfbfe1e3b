"""SQLite-only store behaviour: the writer, WAL, migrations (the rest: test_contract)."""

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

from receiver.errors import StoreError, StoreUnavailable
from receiver.store import (
    PENDING,
    Incoming,
)
from receiver.store.migrate import Migration, migrations
from receiver.store.sqlite import SqliteStore
from receiver.store.sqlite import writer as writer_module
from receiver.store.sqlite.writer import Writer, connect
from receiver.web.intake import incoming_from

from ..conftest import delivery, encode

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
    """An `Incoming` built from a payload as the intake builds it (receiver/web/incoming.py)."""
    return incoming_from(encode(delivery() if payload is None else payload), received_at, 0)


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


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    """A started writer on ``tmp_path/writer.db``, stopped after the test."""
    started = Writer(str(tmp_path / "writer.db"))
    started.start()
    yield started
    with contextlib.suppress(asyncio.CancelledError):  # a test may cancel its flusher
        await started.stop()


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
    writer: Writer,
) -> None:
    """In one group commit, a job that wrote then raised is undone; its neighbours commit."""
    await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER UNIQUE)"))

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (-1)")
        raise RuntimeError("handler bug after a write")

    commits = writer.commits
    # Submitted in one loop iteration: they share the next transaction.
    outcomes = await asyncio.gather(
        *(
            writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
            for n in range(5)
        ),
        writer.run(half_then_fail),
        *(
            writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
            for n in range(5, 10)
        ),
        return_exceptions=True,
    )

    assert [type(o) for o in outcomes].count(RuntimeError) == 1
    assert writer.commits - commits == 1, "one commit for all 11 jobs"
    rows = await writer.run(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall())
    assert rows == [(n,) for n in range(10)]


async def test_writer_queues_jobs_behind_a_running_commit(
    tmp_path: Path, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one COMMIT is in its thread the loop runs on; the jobs submitted meanwhile
    wait for it, then share the next transaction."""
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
        entered, release = threading.Event(), threading.Event()
        real_commit = writer_module._commit

        def held_commit(conn: sqlite3.Connection) -> None:
            entered.set()
            release.wait(5)
            real_commit(conn)

        monkeypatch.setattr(writer_module, "_commit", held_commit)
        commits = writer.commits
        first = asyncio.ensure_future(
            writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (0)"))
        )
        await eventually(entered.is_set)
        later = asyncio.gather(
            *(
                writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
                for n in range(1, 21)
            )
        )
        await eventually(lambda: len(writer._pending) == 20)
        assert not first.done(), "acknowledged only after its COMMIT returned"
        release.set()
        await asyncio.gather(first, later)

        assert writer.commits - commits == 2, "the held commit, then one for the 20 queued jobs"
        assert query(str(tmp_path / "writer.db"), "SELECT count(*) FROM t") == [(21,)]
    finally:
        release.set()  # before the fixture stops the writer: the held commit must end


@pytest.mark.parametrize(("flood", "gathers"), [(1, False), (20, True)])
async def test_writer_gathers_jobs_after_a_flood_commit_only(
    writer: Writer, monkeypatch: pytest.MonkeyPatch, flood: int, gathers: bool
) -> None:
    """After a commit of GATHER_FROM or more jobs, the next transaction waits a few loop
    passes for jobs still arriving (one per pass here) and takes them together; after a
    small commit it starts at once (no delay at moderate rates)."""
    await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    sizes: list[int] = []
    real_run_items = writer_module.run_items

    def counting(conn: sqlite3.Connection, items: list[Any]) -> Any:
        sizes.append(len(items))
        return real_run_items(conn, items)

    monkeypatch.setattr(writer_module, "run_items", counting)

    def insert(conn: sqlite3.Connection) -> Any:
        return conn.execute("INSERT INTO t VALUES (1)")

    await asyncio.gather(*(writer.run(insert) for _ in range(flood)))
    assert sizes == [flood]
    trickled = []
    for _ in range(12):  # one job per pass of the loop
        trickled.append(asyncio.ensure_future(writer.run(insert)))
        await asyncio.sleep(0)
    await asyncio.gather(*trickled)

    assert sum(sizes[1:]) == 12
    if gathers:  # GATHER_FROM <= 20: waited up to GATHER_PASSES passes, one job each
        assert sizes[1] >= 4, sizes
    else:
        assert sizes[1] == 1, sizes


async def test_writer_cancelled_while_gathering_fails_the_waiting_jobs(writer: Writer) -> None:
    """A writer cancelled between transactions (the loop going away) fails the jobs that
    wait for the next one: none is left waiting forever."""
    await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))

    def insert(conn: sqlite3.Connection) -> Any:
        return conn.execute("INSERT INTO t VALUES (1)")

    await asyncio.gather(*(writer.run(insert) for _ in range(20)))  # a flood commit
    waiting = asyncio.ensure_future(writer.run(insert))
    for _ in range(2):  # one pass to queue the job, one for the writer to start gathering
        await asyncio.sleep(0)
    assert len(writer._pending) == 1
    assert writer._flusher is not None
    writer._flusher.cancel()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(waiting, 5)


async def test_writer_survives_an_unexpected_error_in_a_transaction(
    tmp_path: Path, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-database error while building a transaction fails that transaction's jobs
    (StoreUnavailable, rolled back); the writer goes on committing the next ones."""
    await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    real_run_items = writer_module.run_items

    def broken_once(conn: sqlite3.Connection, items: list[Any]) -> Any:
        monkeypatch.setattr(writer_module, "run_items", real_run_items)
        conn.execute("INSERT INTO t VALUES (-1)")
        raise RuntimeError("bug")

    monkeypatch.setattr(writer_module, "run_items", broken_once)
    with pytest.raises(StoreUnavailable):
        await writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
    # Bounded: a writer that died with the error would leave this waiting forever.
    await asyncio.wait_for(writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (2)")), 5)

    assert query(str(tmp_path / "writer.db"), "SELECT x FROM t") == [(2,)]


async def test_writer_waits_for_another_processes_write_lock_off_the_loop(
    tmp_path: Path, writer: Writer
) -> None:
    """While another connection holds the write lock, the loop keeps running; the job
    commits once the lock is free."""
    path = str(tmp_path / "writer.db")
    other = connect(path)
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
        other.execute("BEGIN IMMEDIATE")
        job = asyncio.ensure_future(
            writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        )
        ticks = 0
        for _ in range(20):  # the loop is not blocked by the waiting BEGIN
            await asyncio.sleep(0.005)
            ticks += 1
        assert not job.done()
        other.execute("COMMIT")
        await asyncio.wait_for(job, 5)

        assert ticks == 20
        assert query(path, "SELECT x FROM t") == [(1,)]
    finally:
        other.close()


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
