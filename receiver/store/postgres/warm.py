"""Connections made ready before the first webhook, not by it.

A connection's first statements are slow: asyncpg asks the server, once per connection,
how to encode the array types of the batched statements (it knows only ``text[]`` and
``oid[]`` itself), and the server loads the tables' catalog entries on their first use
in each session. Paid by the first webhooks, that was their latency; paid at start-up,
nobody waits for it. (What asyncpg learns of the types stays with the connection; the
statements themselves are parsed again on first use, which a warm session does in a
fraction of a millisecond.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from . import batch
from . import statements as pg_sql

INTAKE = (batch.INGEST_BATCH, pg_sql.INGEST)
"""What every webhook connection runs: described on each at start-up."""
BOOKKEEPING = (pg_sql.CLAIM, pg_sql.COMPLETE)
"""What the worker's bookkeeping connection runs."""


async def warm_pool(pool: Any, count: int, statements: Sequence[str]) -> None:
    """Open ``count`` connections of ``pool`` at once and describe ``statements`` on
    each; raise the first failure once every connection is back in the pool."""
    held = 0
    all_held = asyncio.Event()

    async def one() -> None:
        nonlocal held
        try:
            async with pool.acquire() as conn:
                await _prepare(conn, statements)
                held += 1
                if held == count:
                    all_held.set()
                await all_held.wait()  # held until all are: each gets a connection of its own
        except BaseException:
            all_held.set()  # the others need not wait for this one
            raise

    outcomes = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _prepare(conn: Any, statements: Sequence[str]) -> None:
    for statement in statements:
        await conn.prepare(statement)
