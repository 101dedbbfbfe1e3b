"""One thread owns SQLite's write connection and group-commits everyone's work.

Why: several coroutines sharing one connection let one request's rollback erase another
request's already-acknowledged row (measured; see issue #2). Here every write is a *job*,
a function of the connection run inside one ``BEGIN IMMEDIATE ... COMMIT`` together with
whatever else queued meanwhile; each job has its own savepoint, so a failing job rolls back
only itself. A job's future resolves only after COMMIT returned, i.e. after the fsync of
``synchronous=FULL``: a 200 answered on that result is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import StoreError, StoreUnavailable

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
_Item = tuple[Job, asyncio.Future[Any], asyncio.AbstractEventLoop]

log = logging.getLogger("receiver.store")
_STOP = object()
BATCH_MAX = 512


def connect(path: str) -> sqlite3.Connection:
    """A connection with the pragmas every receiver connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: WAL is fsynced at every commit, so an acknowledged event survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class Writer:
    """A thread running write jobs in group-committed transactions."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.commits = 0
        self.jobs = 0

    def start(self) -> None:
        """Open the connection in the writer thread; raise what opening raised."""
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreUnavailable(f"cannot open SQLite database: {self._error}") from self._error

    def stop(self) -> None:
        """Finish queued jobs, then close the connection."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in the next transaction; return once it is committed."""
        if self._thread is None:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    def _run(self) -> None:
        try:
            conn = connect(self._path)
        except Exception as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Item] = [first]  # type: ignore[list-item]
                stop = False
                while len(batch) < BATCH_MAX:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future, loop in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((future, loop, None, _translate(exc)))
                else:
                    outcomes.append((future, loop, result, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreUnavailable(f"commit failed: {exc}")
            outcomes = [(future, loop, None, error) for _, future, loop in batch]
        self.commits += 1
        self.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[1], []).append(outcome)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[asyncio.Future[Any], Any, Any, Any]]) -> None:
    for future, _, result, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _translate(exc: Exception) -> Exception:
    # Driver errors (and binding errors such as OverflowError) become StoreError at this
    # boundary; a job's own domain errors pass through unchanged.
    if isinstance(exc, sqlite3.Error | OverflowError | ValueError | TypeError):
        error = StoreError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc
