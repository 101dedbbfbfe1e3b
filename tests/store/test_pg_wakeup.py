"""Workers wake on commit across processes (PostgreSQL LISTEN/NOTIFY), and keep waking
after their listening connection is killed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from receiver import Context, Event, Registry
from receiver.dispatch.worker import Worker
from receiver.store import Store

from ..conftest import delivery, make_settings
from ..pg import fresh_database, opened_store
from .test_store import eventually, incoming

POLL = 60.0  # the worker's poll interval: far beyond every deadline below


@contextlib.asynccontextmanager
async def two_stores() -> AsyncIterator[tuple[Store, Store]]:
    """Two PostgreSQL stores (two pools, as two processes) on one fresh database."""
    async with fresh_database() as url, opened_store(url) as mine, opened_store(url) as theirs:
        yield mine, theirs


async def listener_pids(store: Store) -> list[int]:
    """Backends LISTENing for the worker's wake-up."""
    rows = await store.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN%'"
    )
    return [pid for (pid,) in rows]


async def test_a_commit_in_another_process_wakes_the_worker_at_once(tmp_path: Path) -> None:
    """With a 60 s poll, an event committed through another pool runs within seconds:
    the commit's NOTIFY woke the worker; after its listener is killed, the next commit
    still wakes it (reconnected)."""
    settings = make_settings(tmp_path, worker_poll_seconds=POLL)
    registry, handled = Registry(), asyncio.Queue[str]()

    @registry.on("delivery-status")
    async def record(event: Event, ctx: Context) -> None:
        handled.put_nowait(event.message_id or "")

    async with two_stores() as (mine, theirs):
        worker = Worker(mine, registry, settings)
        running = asyncio.create_task(worker.run())
        try:
            [pid] = await eventually(lambda: listener_pids(theirs))
            await eventually(lambda: worker._running)
            started = time.monotonic()
            await theirs.ingest(incoming(delivery(message_id=1)))
            assert await asyncio.wait_for(handled.get(), 5) == "1"
            assert time.monotonic() - started < 5

            await theirs.fetch("SELECT pg_terminate_backend(?)", (pid,))
            await eventually(lambda: _replaced(theirs, pid), within=10)
            await theirs.ingest(incoming(delivery(message_id=2)))
            assert await asyncio.wait_for(handled.get(), 5) == "2"
        finally:
            await worker.stop(grace=0)
            await running


async def _replaced(store: Store, old: int) -> bool:
    pids = await listener_pids(store)
    return bool(pids) and old not in pids
