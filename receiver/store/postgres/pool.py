"""The PostgreSQL store's connections: the pool of the webhooks and handlers, and the
worker's bookkeeping connection; their sizes and session settings."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

POOL_MIN = 2
# Per process (RECEIVER_PG_POOL_SIZE). The worker runs up to RECEIVER_WORKER_CONCURRENCY
# handlers, which share these connections with the intake path; a short wait for a
# connection is cheaper than hundreds of idle backends when many replicas run.
POOL_MAX = 10
STATEMENT_CACHE = 100
"""Prepared statements kept per connection (RECEIVER_PG_STATEMENT_CACHE_SIZE); 0 for
PgBouncer in transaction mode, at the price of a prepare round trip per query."""
SESSION_SETTINGS = {
    # The claims, the resend leases and the shared send limit rely on READ COMMITTED
    # (each statement sees what committed before it; a row found locked is re-checked
    # once the lock is gone), whatever the database's default says.
    "default_transaction_isolation": "read committed",
    # A statement waiting longer for a lock (DDL on events, a stuck session) fails: a
    # webhook is answered 503 for MTA to retry instead of hanging, and a migration gives
    # up instead of queueing every request behind its lock.
    "lock_timeout": "10s",
}
BOOKKEEPING_CONNECTIONS = 1
"""Of the pool's connections, those reserved for the worker's own bookkeeping (claims,
completions, one statement per batch each): see `_bookkeeping`."""
BOOKKEEPING_SETTINGS = {
    **SESSION_SETTINGS,
    # Leases and completions need not wait for their WAL flush: a server crash can only
    # lose the last few, and their events then run again, as after any lost lease (every
    # handler may run more than once; the resends' exactly-once is their own statements',
    # committed on the main pool). Webhooks never go through these connections: a 200
    # still waits for its flush.
    "synchronous_commit": "off",
}


async def _keep_session(conn: Any) -> None:
    """Give a connection back to the pool as it is. asyncpg rolls back an open
    transaction itself; its default reset adds a round trip per use (advisory unlock,
    CLOSE ALL, UNLISTEN, RESET ALL) for session state our connections never keep: no
    LISTEN (the listener has its own connection), advisory locks that are transaction
    scoped or unlocked in ``finally``, and migrate RESETs what it SETs."""


async def open_pools(
    url: str, min_size: int, max_size: int, statement_cache_size: int
) -> tuple[Any, Any]:
    """(the main pool, the bookkeeping pool) within ``max_size`` connections in all."""
    # What is left for webhooks and handlers once the bookkeeping connection is set
    # apart (RECEIVER_PG_POOL_SIZE=2 leaves 1: the pool's floor must fit in it).
    intake_size = max(1, max_size - BOOKKEEPING_CONNECTIONS)
    pool = await asyncpg.create_pool(
        url,
        min_size=min(min_size, intake_size),
        max_size=intake_size,
        statement_cache_size=statement_cache_size,
        server_settings=SESSION_SETTINGS,
        reset=_keep_session,
    )
    # No connection until the worker's first claim: CLI commands open none.
    bookkeeping = await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=BOOKKEEPING_CONNECTIONS,
        statement_cache_size=statement_cache_size,
        server_settings=BOOKKEEPING_SETTINGS,
        reset=_keep_session,
    )
    return pool, bookkeeping
