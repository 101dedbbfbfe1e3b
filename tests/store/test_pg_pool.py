"""The PostgreSQL pool follows RECEIVER_PG_POOL_SIZE and RECEIVER_PG_STATEMENT_CACHE_SIZE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.store import Store
from receiver.store.postgres.pool import BOOKKEEPING_CONNECTIONS

from ..conftest import delivery, make_settings
from ..pg import fresh_database
from .test_store import incoming

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


@pytest.mark.parametrize("worker", [True, False])
async def test_warm_opens_the_connections_before_the_first_webhook(
    tmp_path: Path, worker: bool
) -> None:
    """Start-up opens every connection webhooks may use (and the worker's bookkeeping one
    when it runs), so that no webhook waits for a connection to open or for asyncpg to
    learn the statements' types."""
    async with fresh_database() as url:
        settings = make_settings(tmp_path, database_url=url, pg_pool_size=4)
        store = create_app(settings).store
        await store.open()
        try:
            await store.warm(worker=worker)
            [(others,)] = await store.fetch(BACKENDS)
            intake = 4 - BOOKKEEPING_CONNECTIONS
            assert others == intake - 1 + (BOOKKEEPING_CONNECTIONS if worker else 0)
        finally:
            await store.close()


async def test_a_failed_warm_up_is_logged_and_the_store_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One connection's warm-up fails while the others' are still under way: the failure
    is a warning, and every connection is back in the pool only once its own work is
    done (a webhook never gets a connection that is still busy)."""
    from receiver.store.postgres import warm

    real, calls = warm._prepare, []

    async def first_refused(conn: Any, statements: Sequence[str]) -> None:
        calls.append(None)
        if len(calls) == 1:
            raise ConnectionResetError("connection reset by peer")
        await asyncio.sleep(0.05)  # the others are still preparing when it fails
        await real(conn, statements)

    monkeypatch.setattr(warm, "_prepare", first_refused)
    async with fresh_database() as url:
        store = create_app(make_settings(tmp_path, database_url=url)).store
        await store.open()
        try:
            await store.warm(worker=True)
            assert "could not ready the connections before traffic: ConnectionResetError" in (
                caplog.text
            )
            assert len(calls) > 2
            queries = await asyncio.gather(*(store.fetch("SELECT 1") for _ in range(20)))
            assert queries == [[(1,)]] * 20
        finally:
            await store.close()


@pytest.mark.parametrize(
    ("rows", "worker", "analyzed"),
    [(3, True, True), (0, True, False), (3, False, False)],
    ids=["backlog", "empty", "no-worker"],
)
async def test_a_worker_starting_on_a_never_analyzed_backlog_analyzes_it_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: int, worker: bool, analyzed: bool
) -> None:
    """A backlog in an `events` table that never had planner statistics (accepted with
    ``--no-worker`` while autovacuum was off or had not run yet): a starting worker runs
    ANALYZE before its first claim, once; an empty table, or a process without a
    worker, is left to autovacuum and the slow-claim ANALYZE."""
    caplog.set_level(logging.INFO, "receiver.store")
    async with fresh_database() as url:
        store = create_app(make_settings(tmp_path, database_url=url)).store
        await store.open()
        try:
            for n in range(rows):
                await store.ingest(incoming(delivery(message_id=n)))
            await store.warm(worker=worker)
            await store.warm(worker=worker)  # a restart: analyzed already
            [(done,)] = await store.fetch(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'"
            )
        finally:
            await store.close()
    assert done is analyzed
    assert caplog.text.count("running ANALYZE events") == int(analyzed)
