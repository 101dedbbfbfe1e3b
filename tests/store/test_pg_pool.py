"""The PostgreSQL pool follows RECEIVER_PG_POOL_SIZE and RECEIVER_PG_STATEMENT_CACHE_SIZE."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from receiver.app import create_app
from receiver.store import Store
from receiver.store.postgres.pool import BOOKKEEPING_CONNECTIONS

from ..conftest import make_settings
from ..pg import fresh_database

pytestmark = pytest.mark.postgres

BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def prepared(store: Store) -> int:
    """Statements prepared in the session that runs this query (itself included)."""
    [(count,)] = await store.fetch("SELECT count(*) FROM pg_prepared_statements")
    return int(count)


@pytest.mark.parametrize(("pool", "cache"), [(3, 0), (4, 100)])
async def test_pool_size_and_statement_cache_come_from_settings(
    tmp_path: Path, pool: int, cache: int
) -> None:
    """20 concurrent queries open at most the pool's size of connections, less the one kept
    for the worker's bookkeeping (opened by its first claim); with a cache of 0 nothing
    stays prepared (PgBouncer's transaction mode), with 100 statements do."""
    async with fresh_database() as url:
        settings = make_settings(
            tmp_path, database_url=url, pg_pool_size=pool, pg_statement_cache_size=cache
        )
        store = create_app(settings).store
        await store.open()
        try:
            await asyncio.gather(*(store.fetch("SELECT pg_sleep(0.05)") for _ in range(20)))
            [(others,)] = await store.fetch(BACKENDS)
            # this query holds one of them
            assert others == pool - BOOKKEEPING_CONNECTIONS - 1
            assert (await prepared(store) == 0) is (cache == 0)
        finally:
            await store.close()


@pytest.mark.parametrize("pool", [1, 2])
async def test_the_smallest_pools_open(tmp_path: Path, pool: int) -> None:
    """RECEIVER_PG_POOL_SIZE=1 or 2 leaves one connection for webhooks and handlers beside
    the bookkeeping one: the pool's floor (2) must shrink to fit, not refuse to open."""
    async with fresh_database() as url:
        store = create_app(make_settings(tmp_path, database_url=url, pg_pool_size=pool)).store
        await store.open()
        try:
            assert await store.fetch("SELECT 1") == [(1,)]
        finally:
            await store.close()
