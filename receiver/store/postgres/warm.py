"""Connections made ready before the first webhook, not by it.

A connection's first statements are slow: asyncpg asks the server, once per connection,
how to encode the array types of the batched statements (it knows only ``text[]`` and
``oid[]`` itself), and the server loads the tables' catalog entries on their first use
in each session. Paid by the first webhooks, that was their latency; paid at start-up,
nobody waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from . import batch
from . import statements as pg_sql

INTAKE = (batch.INGEST_BATCH, pg_sql.INGEST)
"""What every webhook connection runs: prepared on each at start-up."""
BOOKKEEPING = (pg_sql.CLAIM, pg_sql.COMPLETE)
"""What the worker's bookkeeping connection runs."""


async def warm_pool(pool: Any, count: int, statements: Sequence[str]) -> None:
    """Open ``count`` connections of ``pool`` at once and prepare ``statements`` on each
    (asyncpg keeps what it learnt of their types for the connection's lifetime)."""
    acquired = await asyncio.gather(*(pool.acquire() for _ in range(count)), return_exceptions=True)
    conns = [conn for conn in acquired if not isinstance(conn, BaseException)]
    try:
        for failed in acquired:
            if isinstance(failed, BaseException):
                raise failed
        await asyncio.gather(*(_prepare(conn, statements) for conn in conns))
    finally:
        for conn in conns:
            await pool.release(conn)


async def _prepare(conn: Any, statements: Sequence[str]) -> None:
    for statement in statements:
        await conn.prepare(statement)
