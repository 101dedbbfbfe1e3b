"""SQLite's write connection, group-committing everyone's work.

Why one writer: several coroutines sharing one connection let one request's rollback
erase another request's already-acknowledged row (measured; see issue #2). Here every
write is a *job* run inside one ``BEGIN IMMEDIATE ... COMMIT`` together with whatever
else queued meanwhile, each in its own savepoint, so a failing job rolls back only
itself. A job's future resolves only after COMMIT returned, i.e. after the fsync of
``synchronous=FULL``: a 200 answered on that result is durable.

*Batched* jobs (`Writer.submit`) go further: the items of one kind queued together run as
one call (a handful of statements for any number of webhook inserts). What runs inside a
transaction is in receiver/store/sqlite/jobs.py; this module decides when and where.

Where the work runs: the statements run on the event loop's own thread, and only the
COMMIT (WAL write and fsync, the one long wait) runs in a helper thread, while the loop
goes on serving and queueing the next transaction. Running every statement in a thread
instead cost a GIL hand-over per statement: with the loop busy each one waited up to the
switch interval, which showed as slow commits and a long latency tail (bench/ingest.py).
``BEGIN IMMEDIATE`` does not wait on the loop either: when another process holds the
write lock, it waits in the helper thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ...errors import StoreUnavailable
from .jobs import Batch, Item, Outcome, failed, resolve, run_items

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a batch

log = logging.getLogger("receiver.store")
BUSY_TIMEOUT_MS = 10_000
GATHER_FROM = 16
"""A commit of this many jobs means a flood: the next one first gathers (see `_gather`)."""
GATHER_PASSES = 8
"""Passes of the event loop a transaction waits at most for its jobs to gather."""


def connect(path: str) -> sqlite3.Connection:
    """A connection with the pragmas every receiver connection uses."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: WAL is fsynced at every commit, so an acknowledged event survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # Savepoints and statement journals in memory: on disk, SQLite opened, wrote and
    # deleted a temporary file in /var/tmp for every transaction (seen with strace).
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


class Writer:
    """Runs write jobs in group-committed transactions, one transaction at a time."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._pending: list[Item] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._deferred = False  # the last transaction left the worker's jobs for this one
        self._stopping = False
        self.commits = 0
        self.jobs = 0

    def start(self) -> None:
        """Open the connection; raise `StoreUnavailable` when SQLite cannot open the file."""
        try:
            conn = connect(self._path)
            # The loop never waits for the write lock: BEGIN fails fast, then waits in the
            # commit thread (see _begin).
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database: {exc}") from exc
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")
        self._stopping = False
        self._flusher = self._loop.create_task(self._flush_forever(conn), name="sqlite-writer")

    async def stop(self) -> None:
        """Commit what is queued, then close the connection."""
        if self._flusher is None:
            return
        self._stopping = True
        self._wake()
        await self._flusher
        self._flusher = None
        assert self._conn is not None
        assert self._committer is not None
        self._committer.shutdown()
        self._conn.close()
        self._conn = None

    async def run(
        self, job: Callable[[sqlite3.Connection], T], *, single_statement: bool = False
    ) -> T:
        """Run ``job`` in the next transaction; return once it is committed.

        ``single_statement``: the job runs exactly one statement, which SQLite already
        undoes on its own when it fails, so it skips the savepoint (two statements saved
        on the worker's per-event writes).
        """
        return await self._enqueue(job, None, None, single_statement)  # type: ignore[no-any-return]

    async def submit(self, batch: Batch[I, T], item: I) -> T:
        """Run ``item`` with the other items of ``batch`` queued meanwhile; once committed."""
        return await self._enqueue(None, batch, item)  # type: ignore[no-any-return]

    async def _enqueue(
        self,
        job: Callable[[sqlite3.Connection], Any] | None,
        batch: Batch[Any, Any] | None,
        payload: Any,
        single_statement: bool = False,
    ) -> Any:
        if self._flusher is None or self._stopping:
            raise StoreUnavailable("the store is closed")
        if asyncio.get_running_loop() is not self._loop:
            raise StoreUnavailable("the SQLite store is used from another event loop")
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append(Item(job, batch, payload, future, single_statement))
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _flush_forever(self, conn: sqlite3.Connection) -> None:
        # Woken through a future, this task runs after the callbacks already queued in
        # this loop iteration: one transaction takes everything they submitted.
        assert self._loop is not None
        last = 0  # jobs in the last commit
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wakeup = self._loop.create_future()
                await self._wakeup
                continue
            try:
                await self._gather(last)
            except asyncio.CancelledError:  # the loop is going away: nothing will commit
                resolve(failed(self._pending, "writer stopped"))
                raise
            items = self._take()
            last = len(items)
            try:
                outcomes = await self._transaction(conn, items)
            except asyncio.CancelledError:  # the loop is going away mid-commit
                resolve(failed(items, "writer stopped"))
                raise
            except Exception as exc:
                # The transaction itself broke (a failing job is caught by itself in
                # jobs.py), or a bug: its jobs fail, rolled back; the next one runs.
                if isinstance(exc, sqlite3.Error):
                    log.error("store commit failed: %s", exc)
                else:
                    log.exception("store writer: transaction failed")
                await self._in_thread(_rollback, conn)
                resolve(failed(items, f"commit failed: {exc}"))
                continue
            self.commits += 1
            self.jobs += len(items)
            resolve(outcomes)

    async def _gather(self, last: int) -> None:
        """After a commit of `GATHER_FROM` or more jobs, let the loop read and verify the
        webhooks that have already arrived, for a few passes or until as many jobs wait
        as the last commit took, before starting the next transaction.

        A commit costs about the same CPU whatever it carries (WAL frames, fsync and two
        thread hand-offs): under a flood, commits then carry more webhooks each and
        saturation throughput rises (bench/ingest.py). At ordinary rates commits carry a
        few jobs and no pass is spent. (The
        worker's 16 completions can start a gather with no webhook traffic: a few idle
        passes, microseconds.)
        """
        passes = 0
        while (
            last >= GATHER_FROM
            and len(self._pending) < last
            and passes < GATHER_PASSES
            and not self._stopping
        ):
            passes += 1
            await asyncio.sleep(0)

    def _take(self) -> list[Item]:
        # Webhooks waiting for their 200 commit ahead of the worker's claims and
        # completions, which wait one transaction at most.
        items, self._pending = self._pending, []
        urgent = [item for item in items if item.urgent]
        if urgent and len(urgent) < len(items) and not self._deferred:
            self._pending = [item for item in items if not item.urgent]
            self._deferred = True
            return urgent
        self._deferred = False
        return items

    async def _transaction(self, conn: sqlite3.Connection, items: list[Item]) -> list[Outcome]:
        await self._begin(conn)
        outcomes = run_items(conn, items)
        await self._in_thread(_commit, conn)
        return outcomes

    async def _begin(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            await self._in_thread(_begin_waiting, conn)

    async def _in_thread(
        self, call: Callable[[sqlite3.Connection], None], conn: sqlite3.Connection
    ) -> None:
        assert self._loop is not None
        await self._loop.run_in_executor(self._committer, call, conn)


def _begin_waiting(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` that waits up to the busy timeout for another process's lock."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # SQLite may have rolled back already (I/O error)
            log.error("store rollback failed: %s", exc)
