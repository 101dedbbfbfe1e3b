"""What runs inside one SQLite transaction of the writer (receiver/store/sqlite/writer.py).

A *job* is a function of the connection; a *batch* runs the items of one kind queued
together as one call. Plain jobs run each in a savepoint, so a failing job rolls back
only itself; a failed batch falls back to its items one by one. Driver errors become
`StoreError` here; a job's own errors pass through to whoever awaits it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ...errors import StoreError, StoreUnavailable

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a batch

log = logging.getLogger("receiver.store")


@dataclass(frozen=True, slots=True)
class Batch(Generic[I, T]):
    """A kind of batched job: ``run(conn, items)`` returns one result per item, in order."""

    name: str
    run: Callable[[sqlite3.Connection, list[I]], list[T]]
    urgent: bool = False


@dataclass(slots=True)
class Item:
    """One submitted job or batch item, and the future its submitter awaits."""

    job: Callable[[sqlite3.Connection], Any] | None
    batch: Batch[Any, Any] | None
    payload: Any
    future: asyncio.Future[Any]
    single_statement: bool = False  # atomic by itself: no savepoint needed

    @property
    def urgent(self) -> bool:
        """A webhook waiting for its 200: commits ahead of the worker's jobs."""
        return self.batch is not None and self.batch.urgent


Outcome = tuple[Item, Any, Exception | None]


def failed(items: Sequence[Item], reason: str) -> list[Outcome]:
    """Every item fails with `StoreUnavailable` (its transaction did not commit)."""
    error = StoreUnavailable(reason)
    return [(item, None, error) for item in items]


def resolve(done: Sequence[Outcome]) -> None:
    """Hand each outcome to its submitter (unless it stopped waiting)."""
    for item, result, error in done:
        if item.future.done():
            continue
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)


def run_items(conn: sqlite3.Connection, items: list[Item]) -> list[Outcome]:
    """Run ``items`` inside the open transaction: plain jobs each in a savepoint, batches
    together."""
    outcomes: list[Outcome] = []
    groups: dict[str, list[Item]] = {}
    for item in items:
        if item.batch is None and item.single_statement:
            outcomes.append(_statement(conn, item))
        elif item.batch is None:
            outcomes.append(_isolated(conn, item, item.job))
        else:
            groups.setdefault(item.batch.name, []).append(item)
    for group in groups.values():
        outcomes += _run_batch(conn, group)
    return outcomes


def _isolated(
    conn: sqlite3.Connection, item: Item, job: Callable[[sqlite3.Connection], Any] | None
) -> Outcome:
    """Run one job in its own savepoint."""
    assert job is not None
    conn.execute("SAVEPOINT job")
    try:
        result = job(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return (item, None, _translate(exc))
    conn.execute("RELEASE job")
    return (item, result, None)


def _statement(conn: sqlite3.Connection, item: Item) -> Outcome:
    """Run a one-statement job; a failed statement is undone by SQLite itself."""
    assert item.job is not None
    try:
        return (item, item.job(conn), None)
    except Exception as exc:
        return (item, None, _translate(exc))


def _run_batch(conn: sqlite3.Connection, group: list[Item]) -> list[Outcome]:
    batch = group[0].batch
    assert batch is not None
    conn.execute("SAVEPOINT batch")
    try:
        results = batch.run(conn, [item.payload for item in group])
    except Exception as exc:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        if len(group) == 1:
            return [(group[0], None, _translate(exc))]
        log.warning(
            "batch %s of %d failed (%s); running its items one by one", batch.name, len(group), exc
        )
        return [_isolated(conn, item, _single(batch, item.payload)) for item in group]
    conn.execute("RELEASE batch")
    return list(zip(group, results, [None] * len(group), strict=True))


def _single(batch: Batch[Any, Any], payload: Any) -> Callable[[sqlite3.Connection], Any]:
    def job(conn: sqlite3.Connection) -> Any:
        return batch.run(conn, [payload])[0]

    return job


def _translate(exc: Exception) -> Exception:
    # Driver errors (and binding errors such as OverflowError) become StoreError at this
    # boundary; a job's own domain errors pass through unchanged.
    if isinstance(exc, sqlite3.Error | OverflowError | ValueError | TypeError):
        error = StoreError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc
