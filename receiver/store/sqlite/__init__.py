"""The SQLite store: zero set-up, WAL mode, one group-committing writer."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from ...errors import ConfigError, StoreUnavailable
from .. import sql
from ..migrate import CREATE_TABLE, migrations
from ..records import (
    PENDING,
    Claimed,
    Completion,
    Incoming,
    IngestResult,
    claimed_events,
    ingest_results,
)
from ..shared import SharedStatements
from .jobs import Batch
from .writer import Writer, connect

log = logging.getLogger("receiver.store")


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a file path."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"a SQLite URL looks like sqlite:///receiver.db, got {url!r}")
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        raise ConfigError("SQLite needs a file (the writer and readers share it), not :memory:")
    return path


class SqliteStore(SharedStatements):
    """`Store` on one SQLite file."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._writer = Writer(self.path)
        self._reader: aiosqlite.Connection | None = None

    async def open(self, migrate: bool = True) -> None:
        """Start the writer, bring the schema up to date and open the reader."""
        self._writer.start()
        if migrate:
            await self._writer.run(_migrate)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=10000")
        self._reader.row_factory = aiosqlite.Row

    async def warm(self, worker: bool) -> None:
        """Nothing to ready: `open` made the only connections there are."""

    async def close(self) -> None:
        """Let queued writes commit, then close every connection."""
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await self._writer.stop()
        if self._writer.commits:
            log.info(
                "store closed: %d writes in %d transactions (%.1f per commit)",
                self._writer.jobs,
                self._writer.commits,
                self._writer.jobs / self._writer.commits,
            )

    @property
    def commits(self) -> int:
        """Transactions committed by the writer (group commits)."""
        return self._writer.commits

    async def watch(self, wake: Callable[[], None]) -> None:
        """Nothing to watch: the intake in this process wakes its worker itself, and a
        worker in another process polls."""

    async def ingest(self, incoming: Incoming) -> IngestResult:
        """Commit an authentic webhook, or count it as a duplicate of the row it repeats."""
        return await self._writer.submit(INGEST, incoming)

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due events, oldest first, one per message at a time."""
        now = time.time() if now is None else now
        return await self._writer.run(
            lambda conn: _claim(conn, owner, limit, now + lease_seconds, now)
        )

    async def complete(
        self, owner: str, completions: Sequence[Completion], now: float | None = None
    ) -> None:
        """Record handler runs and each event's next state; give the leases back."""
        now = time.time() if now is None else now
        for done in completions:
            await self._writer.submit(COMPLETE, (owner, done, now))

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query on the reader connection."""
        if self._reader is None:
            raise StoreUnavailable("the store is closed")
        async with self._reader.execute(query, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def fetch_write(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one writing statement with ``RETURNING`` in the writer; return its rows."""
        return await self._writer.run(
            lambda conn: [tuple(row) for row in conn.execute(query, tuple(params)).fetchall()],
            single_statement=True,
        )

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in the writer; return the rows it changed."""
        return await self._writer.run(
            lambda conn: conn.execute(query, tuple(params)).rowcount, single_statement=True
        )


# Fixed statement sizes: a batch is cut into these, so only a few statements are ever
# prepared (and cached) however the batches vary.
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)


def _chunks(items: list[Any]) -> list[list[Any]]:
    chunks, start = [], 0
    while start < len(items):
        size = next(c for c in _CHUNKS if c <= len(items) - start)
        chunks.append(items[start : start + size])
        start += size
    return chunks


def _ingest_many(conn: sqlite3.Connection, items: list[Incoming]) -> list[IngestResult]:
    # A fixed handful of statements whatever the batch holds (they run on the event
    # loop's thread, so stepping RETURNING rows costs no GIL hand-over). RETURNING gives
    # each input row as it was written: `duplicates` 0 only where this batch inserted the
    # row; a key repeated within the batch is new once.
    landed: list[tuple[str, int, bool]] = []
    for chunk in _chunks(items):
        params: list[Any] = []
        for item in chunk:
            params += item.event_row()
        for key, event_id, duplicates in conn.execute(sql.insert_events(len(chunk)), params):
            landed.append((key, event_id, not duplicates))
    results = ingest_results(items, landed)
    states: list[Any] = [
        (
            item.message_id,
            item.status,
            item.status_rank,
            item.status_at,
            item.received_at,
            item.phone,
            item.external_id,
            item.sender_name,
            item.account,
        )
        for item, result in zip(items, results, strict=True)
        if not result.duplicate and item.message_id is not None and item.state == PENDING
    ]
    for chunk in _chunks(states):
        conn.execute(sql.upsert_messages(len(chunk)), [value for row in chunk for value in row])
    return results


INGEST = Batch("ingest", _ingest_many, urgent=True)
_LEASE = sql.LEASE.format(claimable=sql.CLAIMABLE.format(fence="", lock=""))


def _claim(
    conn: sqlite3.Connection, owner: str, limit: int, until: float, now: float
) -> list[Claimed]:
    rows = conn.execute(_LEASE, (owner, until, now, now, limit)).fetchall()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    runs = conn.execute(f"{sql.SELECT_RUNS} WHERE event_id IN ({sql.marks(ids)})", ids)
    return claimed_events(rows, runs)


def _complete_many(
    conn: sqlite3.Connection, items: list[tuple[str, Completion, float]]
) -> list[None]:
    for owner, done, now in items:
        finished = None if done.state == PENDING else now
        still_ours = conn.execute(
            sql.FINISH_EVENT,
            (done.state, done.run_after, done.last_error, finished, done.event_id, owner),
        ).rowcount
        if not still_ours:
            # The lease expired and another worker owns the event now: its record of
            # runs wins; ours would overwrite it.
            log.warning("event %d: lease lost before completion; results dropped", done.event_id)
            continue
        conn.executemany(
            sql.UPSERT_RUN,
            [(done.event_id, r.handler, r.state, r.attempts, r.last_error, now) for r in done.runs],
        )
    return [None] * len(items)


COMPLETE = Batch("complete", _complete_many)


def _migrate(conn: sqlite3.Connection) -> list[int]:
    conn.execute(CREATE_TABLE)
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    done = []
    for migration in migrations("sqlite"):
        if migration.version in applied:
            continue
        for statement in migration.statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, time.time()),
        )
        done.append(migration.version)
    return done


__all__ = ["SqliteStore", "connect", "sqlite_path"]
