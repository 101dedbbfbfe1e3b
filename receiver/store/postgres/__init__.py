"""The PostgreSQL store: several receivers, one database.

Driver: asyncpg, through its connection pool. It speaks PostgreSQL's binary protocol,
prepares and caches every statement per connection, and is the fastest of the async
drivers on the one-row inserts the intake path does; its ``executemany`` and ``COPY``
cover the batch paths.

Ingests are batched per event-loop iteration (receiver/store/postgres/batch.py): one
statement on one pool connection for all the webhooks of an iteration, several
batches in flight at once on different connections, and PostgreSQL groups concurrent
commits into one WAL flush itself, so there is no single writer here. A lone webhook,
or each one of a failed batch, takes the one-statement path (event insert + message
upsert, one round trip, its own transaction). Claims lock rows with
``FOR UPDATE SKIP LOCKED`` so any number of worker processes share the work; leases
expire, and a dead worker's are taken over once its heartbeat is stale.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ...errors import StoreUnavailable
from ...mta.ratelimit import Limiter, Rate
from .. import schema
from ..records import (
    Claimed,
    Completion,
    Incoming,
    IngestResult,
    claimed_events,
    ingest_results,
)
from ..resends import Resends
from ..shared import SharedStatements
from . import batch as pg_batch
from . import statements as pg_sql
from .completions import Submitted
from .completions import record as record_completions
from .delivered import Delivery, PostgresResends, original_delivered
from .gather import Gathered
from .health import ServerHealth, server_health
from .limiter import PostgresLimiter, account_key
from .listener import Announcer, listen
from .migrate import apply_migrations
from .pool import POOL_MAX, POOL_MIN, STATEMENT_CACHE, open_pools
from .statements import numbered, rowcount, translated
from .statistics import SLOW_CLAIM_SECONDS, Statistics
from .warm import BOOKKEEPING, INTAKE, warm_pool

log = logging.getLogger("receiver.store")

NOTIFY_TIMEOUT = 5.0
"""Seconds a wake-up NOTIFY may take (a connection included) before it is given up: the
other workers then find the events by polling."""


class PostgresStore(SharedStatements):
    """`Store` on a PostgreSQL database, shared by any number of receiver processes."""

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
        statement_cache_size: int = STATEMENT_CACHE,
        slow_claim_seconds: float = SLOW_CLAIM_SECONDS,
    ) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._statement_cache_size = statement_cache_size
        self.statistics = Statistics(self.connection, slow_claim_seconds)
        self._pool: Any = None
        self._bookkeeping_pool: Any = None
        self._completions: dict[str, Gathered[Submitted, None]] = {}  # by owner
        # Half the pool for webhook batches at most: the worker and its handlers keep the
        # rest, and a batch waiting for a connection is better off gathering.
        self._batcher = pg_batch.IngestBatcher(
            self._ingest_batch, self._ingest_one, max_in_flight=max(1, max_size // 2)
        )
        self._delivered: Gathered[Delivery, str | None] = Gathered(
            functools.partial(original_delivered, self)
        )
        self._announce = Announcer(self._notify)

    def __repr__(self) -> str:
        return "PostgresStore(url=<hidden>)"  # the URL may hold a password

    async def open(self, migrate: bool = True) -> None:
        """Open the pool; bring the schema up to date under the migration lock."""
        with translated("cannot connect to PostgreSQL"):
            self._pool, self._bookkeeping_pool = await open_pools(
                self.url, self._min_size, self._max_size, self._statement_cache_size
            )
        if migrate:
            applied = await self.migrate()
            if applied:
                log.info("schema migrations applied: %s", applied)

    async def warm(self, worker: bool) -> None:
        """Open the connections webhooks (and with ``worker`` the worker's bookkeeping)
        will use, their statements described (warm.py); with ``worker``, give `events`
        planner statistics if it never had any (statistics.py). A failure is logged, not
        raised: the first webhooks and claims then pay for it, as they would have."""
        if self._pool is None or self._bookkeeping_pool is None:
            raise StoreUnavailable("the store is closed")
        # Without a statement cache (PgBouncer's transaction mode) a named statement may
        # not outlive its transaction: the connections are only opened.
        prepared = self._statement_cache_size > 0
        steps = [warm_pool(self._pool, self._pool.get_max_size(), INTAKE if prepared else ())]
        if worker:
            steps.append(warm_pool(self._bookkeeping_pool, 1, BOOKKEEPING if prepared else ()))
        try:
            await asyncio.gather(*steps)
        except Exception as exc:
            log.warning(
                "could not ready the connections before traffic: %s: %s", type(exc).__name__, exc
            )
        if worker:
            await self.statistics.at_start()

    async def close(self) -> None:
        """Close the pools, waiting a little for connections in use."""
        await self._announce.close()
        pools = (self._pool, self._bookkeeping_pool)
        self._pool = self._bookkeeping_pool = None
        for pool in pools:
            if pool is not None:
                try:
                    async with asyncio.timeout(10):
                        await pool.close()
                except TimeoutError:
                    pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection (for the shared send limiter)."""
        if self._pool is None:
            raise StoreUnavailable("the store is closed")
        with translated():
            async with self._pool.acquire() as conn:
                yield conn

    async def _bookkeeping(self, query: str, *params: Any) -> list[Any]:
        """Rows of one of the worker's lease or completion statements, run on a connection
        that commits without waiting for the WAL flush (pool.py: BOOKKEEPING_SETTINGS)."""
        if self._bookkeeping_pool is None:
            raise StoreUnavailable("the store is closed")
        with translated():
            async with self._bookkeeping_pool.acquire() as conn:
                return list(await conn.fetch(query, *params))

    async def migrate(self) -> list[int]:
        """Apply missing migrations; return their versions (migrate.py)."""
        async with self.connection() as conn:
            return await apply_migrations(conn)

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever any process commits new events, until cancelled: a
        dedicated LISTEN connection (receiver/store/postgres/listener.py)."""
        await listen(self.url, wake)

    async def ingest(self, incoming: Incoming) -> IngestResult:
        """Commit an authentic webhook, or count it as a duplicate of the row it repeats."""
        return await self._batcher.submit(incoming)

    async def _ingest_batch(self, items: list[Incoming]) -> list[IngestResult]:
        """Several webhooks in one statement (one round trip), whatever their number."""
        arrays = pg_batch.event_rows(items)
        async with self.connection() as conn:
            rows = await conn.fetch(pg_batch.INGEST_BATCH, *arrays)
        if any(inserted for _, _, inserted in rows):
            self._announce()
        return ingest_results(items, rows)

    async def _ingest_one(self, item: Incoming) -> IngestResult:
        """One webhook, one statement (its own transaction)."""
        async with self.connection() as conn:
            event_id, duplicates = await conn.fetchrow(
                pg_sql.INGEST,
                *item.event_row(),
                item.status_rank,
                item.status_at,
                item.sender_name,
            )
        if not duplicates:
            self._announce()
        return IngestResult(event_id, duplicates > 0)

    async def _notify(self) -> None:
        """Wake the workers of every process (listener.py)."""
        async with asyncio.timeout(NOTIFY_TIMEOUT), self.connection() as conn:
            await conn.execute(pg_sql.NOTIFY)

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due events, oldest first, one per message at a time.

        A slow claim runs ANALYZE on `events` afterwards (statistics.py): a plan made
        without statistics visits every pending event.
        """
        now = time.time() if now is None else now
        started = time.monotonic()
        try:
            return await self._claim(owner, limit, now + lease_seconds, now)
        finally:
            await self.statistics.after_claim(time.monotonic() - started)

    async def _claim(self, owner: str, limit: int, until: float, now: float) -> list[Claimed]:
        rows = await self._bookkeeping(pg_sql.CLAIM, owner, until, now, now, limit)
        leased = {row[0]: row[:8] for row in rows}
        runs = [(row[0], *row[8:]) for row in rows if row[8] is not None]
        return claimed_events(leased.values(), runs)

    async def complete(
        self, owner: str, completions: Sequence[Completion], now: float | None = None
    ) -> None:
        """Record handler runs and each event's next state; give the leases back. The
        completions of one loop iteration go in one statement (completions.py)."""
        batcher = self._completions.get(owner)
        if batcher is None:
            batcher = Gathered(functools.partial(record_completions, self._bookkeeping, owner))
            self._completions[owner] = batcher
        await batcher.submit((completions, now))

    @property
    def resends(self) -> Resends:
        """The fallback's tables; `original_delivered` batched per loop iteration."""
        return PostgresResends(self, self._delivered)

    async def server_health(self, since: float, besides: str) -> ServerHealth | None:
        return await server_health(self, since, besides)

    async def vacuum_settings(self) -> dict[str, str] | None:
        """PostgreSQL's autovacuum settings (`schema.VACUUM_SETTINGS`)."""
        return await schema.server_settings(self, schema.VACUUM_SETTINGS)

    def send_limiter(self, rate: Rate, api_key: str) -> Limiter | None:
        """The ``POST /send`` limit in PostgreSQL, shared by every replica of the account."""
        return PostgresLimiter(self, rate, account_key(api_key))

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query written with ``?`` placeholders; return its rows."""
        async with self.connection() as conn:
            return [tuple(row) for row in await conn.fetch(numbered(query), *params)]

    async def fetch_write(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one writing statement with ``RETURNING``; return its rows once committed."""
        return await self.fetch(query, params)

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement (its own transaction); return the rows it changed."""
        async with self.connection() as conn:
            return rowcount(await conn.execute(numbered(query), *params))


__all__ = ["PostgresStore"]
