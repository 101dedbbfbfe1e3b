"""Workers wake on commit across processes (PostgreSQL LISTEN/NOTIFY), and keep waking
after their listening connection is killed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


class Counted:
    """An announcer that also counts its calls."""

    def __init__(self, real: Any, calls: list[None]) -> None:
        self.real, self.calls = real, calls

    def __call__(self) -> None:
        self.calls.append(None)
        self.real()

    async def close(self) -> None:
        await self.real.close()


@contextlib.asynccontextmanager
async def notifications(url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """A LISTENing connection on the wake-up channel; each notification's channel."""
    import asyncpg  # type: ignore[import-untyped]

    from receiver.store.postgres.statements import WAKE_CHANNEL

    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(url)
    try:
        await conn.add_listener(WAKE_CHANNEL, lambda _c, _p, channel, _m: heard.put_nowait(channel))
        yield heard
    finally:
        await conn.close()


async def test_a_batch_of_webhooks_wakes_listeners_once_committed_and_a_duplicate_not() -> None:
    """Webhooks committed together (one batch) announce themselves after their commit,
    in a transaction of their own: every row is visible when the notification arrives.
    A webhook that only repeats a stored one commits nothing new and wakes nobody."""
    async with fresh_database() as url, opened_store(url) as store, notifications(url) as heard:
        batch = [incoming(delivery(message_id=n)) for n in range(1, 6)]
        ingests = asyncio.gather(*(store.ingest(item) for item in batch))
        await asyncio.wait_for(heard.get(), 5)
        [(stored,)] = await store.fetch("SELECT count(*) FROM events")
        assert stored == 5, "woken before the batch was visible"
        assert not any(result.duplicate for result in await ingests)
        announced: list[None] = []
        real = store._announce  # type: ignore[attr-defined]
        store._announce = Counted(real, announced)  # type: ignore[attr-defined]
        assert (await store.ingest(batch[0])).duplicate
        assert (await asyncio.gather(store.ingest(batch[1]), store.ingest(batch[2])))[0].duplicate
        assert announced == []
        await store.ingest(incoming(delivery(message_id=6)))
        assert announced == [None]
