"""PostgreSQL as replicas share it: resend leases, session settings, migration 0004."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

from receiver.store.postgres import PostgresStore
from receiver.store.postgres import pool as postgres_pool
from receiver.store.postgres import statements as pg_sql
from receiver.store.resends import Resends

from ..conftest import schedule_resend
from ..pg import fresh_database, opened_store

pytestmark = pytest.mark.postgres

LEASE = 90.0


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database."""
    async with fresh_database() as fresh:
        yield fresh


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    """The migrated store on `url`."""
    async with opened_store(url) as opened:
        assert isinstance(opened, PostgresStore)
        yield opened


async def waiting_for_locks(store: PostgresStore, count: int, within: float = 5.0) -> None:
    """Poll until ``count`` sessions wait for a row lock; fail at the deadline."""
    deadline = time.monotonic() + within
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    while (await store.fetch(query))[0][0] < count:
        assert time.monotonic() < deadline, f"{count} claims never waited for the row lock"
        await asyncio.sleep(0.01)


async def test_claims_racing_for_a_locked_row_lease_it_once(url: str, store: PostgresStore) -> None:
    """Two replicas' claims that both waited for the row lock: one leases the resend, the
    other gets nothing (it used to lease it too, and then send it a second time)."""
    resends = Resends(store)
    await schedule_resend(store, "1")
    blocker = await asyncpg.connect(url)
    try:
        async with blocker.transaction():
            await blocker.execute(
                "UPDATE resends SET updated_at = 1 WHERE original_message_id = '1'"
            )
            claims = [
                asyncio.create_task(resends.claim_due(owner, 10.0, LEASE, 8)) for owner in "AB"
            ]
            await waiting_for_locks(store, 2)
    finally:
        await blocker.close()
    won = [[r.original_message_id for r in await claim] for claim in claims]

    assert sorted(won) == [[], ["1"]]


async def test_release_drops_only_the_callers_lease(store: PostgresStore) -> None:
    """A release by a former owner leaves the lease another owner holds now."""
    resends = Resends(store)
    await schedule_resend(store, "1")
    [claimed] = await resends.claim_due("A", 10.0, LEASE, 8)

    await resends.release(claimed.original_message_id, "B")
    assert await store.fetch("SELECT lease_owner FROM resends") == [("A",)]
    await resends.release(claimed.original_message_id, "A")
    assert await store.fetch("SELECT lease_owner FROM resends") == [(None,)]


async def test_sessions_read_committed_with_a_lock_timeout(url: str) -> None:
    """On a database whose default is REPEATABLE READ (under which the claims and the
    shared send limit would admit too much), the store's sessions still read committed,
    and give up waiting for a lock after 10 s."""
    admin = await asyncpg.connect(url)
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(
            f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'"
        )
    finally:
        await admin.close()
    async with opened_store(url) as store:
        rows = await store.fetch("SELECT current_setting('transaction_isolation')")
        timeout = await store.fetch("SELECT current_setting('lock_timeout')")
    assert rows == [("read committed",)]
    assert timeout == [("10s",)]


async def test_an_invalid_prebuilt_pending_index_is_rebuilt(url: str) -> None:
    """Migration 0004 tells operators to pre-build its index CONCURRENTLY; a build that
    failed leaves an invalid index of that name, which 0005 replaces (0004 accepts it)."""
    async with opened_store(url):
        pass
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DELETE FROM schema_migrations WHERE version IN (4, 5);"
            " DROP INDEX events_pending_message;"
            " INSERT INTO events (dedup_key, type, name, message_id, received_at,"
            " secret_index, body, state, run_after) VALUES ('k1', 't', 'n', 'M', 0, 0, '',"
            " 'pending', 0), ('k2', 't', 'n', 'M', 0, 0, '', 'pending', 0)"
        )
        with pytest.raises(asyncpg.UniqueViolationError):  # fails, leaving it invalid
            await conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY events_pending_message"
                " ON events (message_id) WHERE state = 'pending'"
            )
        valid = (
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_pending_message'::regclass"
        )
        assert await conn.fetchval(valid) is False
        async with opened_store(url):  # applies 0004 and 0005 again
            pass
        assert await conn.fetchval(valid) is True
        columns = await conn.fetchval("SELECT pg_get_indexdef('events_pending_message'::regclass)")
    finally:
        await conn.close()
    assert "(message_id, id)" in columns


async def test_a_replica_waits_for_another_one_migrating_past_the_lock_timeout(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another replica holds the migration lock longer than lock_timeout (a long
    index build), a starting replica waits for it instead of failing at start-up; its
    sessions keep the lock_timeout afterwards."""
    monkeypatch.setitem(postgres_pool.SESSION_SETTINGS, "lock_timeout", "200ms")
    async with opened_store(url):
        pass
    migrating = await asyncpg.connect(url)
    try:
        await migrating.execute("SELECT pg_advisory_lock($1)", pg_sql.MIGRATION_LOCK)

        async def start_replica() -> list[tuple[object, ...]]:
            async with opened_store(url) as store:
                return await store.fetch("SELECT current_setting('lock_timeout')")

        starting = asyncio.create_task(start_replica())
        deadline = time.monotonic() + 5
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        while not await migrating.fetchval(waiting):
            assert time.monotonic() < deadline, "the replica never waited for the lock"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # past the 200 ms lock_timeout: it must still wait
        assert not starting.done()
        await migrating.execute("SELECT pg_advisory_unlock($1)", pg_sql.MIGRATION_LOCK)
        assert await starting == [("200ms",)]
    finally:
        await migrating.close()
