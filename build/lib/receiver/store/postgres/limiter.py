"""The ``POST /send`` limit shared by every replica of one MTA account, in PostgreSQL.

MTA allows 25 sends per 15 s per *account* (docs/mta.md "Limits and errors"), however many
receiver processes send. Each replica's in-process `SlidingWindowLimiter` would let N
replicas send N times the limit, so with the PostgreSQL store the sliding log lives in
the database: one row per admitted send in ``send_slots``, one pause-until row per
account in ``send_pauses`` (429 ``Retry-After``, ``RateLimit-Remaining: 0``).

Why PostgreSQL and not Redis: every replica already depends on this database for each
webhook it acknowledges, so the limit adds no new service to run, secure or lose; at
25 sends per 15 s a short transaction per send costs nothing measurable; and the clock
that times the window is the database's, so replicas on hosts with skewed clocks still
agree. Redis would buy speed we do not need at the price of a second source of truth.

Admission is one transaction under a transaction-scoped advisory lock per account:
count the sends of the last window, admit when below the limit and no pause is running,
else report how long to wait. The lock ends with the transaction, so a replica that dies
holding it blocks nobody.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ...mta.ratelimit import MARGIN_SECONDS, Rate

log = logging.getLogger("receiver.mta")

# Two-key advisory locks live apart from the one-key migration lock; "mta" in ASCII.
_LOCK_CLASS = 0x6D7461

LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2::text))"
STATE = """
SELECT n.now, w.sends, w.first, (SELECT until FROM send_pauses WHERE account = $1)
FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) n,
     LATERAL (SELECT count(*) AS sends, min(at) AS first FROM send_slots
              WHERE account = $1 AND at > n.now - $2::float8) w
"""
ADMIT = """
WITH expired AS (
    DELETE FROM send_slots WHERE account = $1 AND at <= $2::float8 - $3::float8)
INSERT INTO send_slots (account, at) VALUES ($1, $2::float8)
"""
PAUSE = """
INSERT INTO send_pauses (account, until)
VALUES ($1, extract(epoch FROM clock_timestamp())::float8 + $2::float8)
ON CONFLICT (account) DO UPDATE SET until = GREATEST(send_pauses.until, excluded.until)
"""


class Connections(Protocol):
    """Where the limiter gets a database connection (`PostgresStore.connection`)."""

    def connection(self) -> AbstractAsyncContextManager[Any]: ...


def account_key(api_key: str) -> str:
    """The account's name in the limit tables: a hash, so the key never reaches the DB."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class PostgresLimiter:
    """A `Limiter` whose sliding window is shared through PostgreSQL."""

    def __init__(
        self,
        store: Connections,
        rate: Rate,
        account: str,
        *,
        margin: float = MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.rate = rate
        self.account = account
        self.window = rate.seconds + margin
        self.clock = clock
        self.sleep = sleep
        self._paused_until = 0.0  # this process's copy of the pause, on `clock`
        self._writes: set[asyncio.Task[None]] = set()

    async def acquire(self) -> float:
        """Wait until the account's window has room and no pause runs; take a slot."""
        waited = 0.0
        while True:
            delay = self._paused_until - self.clock()
            if delay <= 0:
                delay = await self._admit()
            if delay <= 0:
                return waited
            await self.sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds``: this process at once, the others via the table."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        task = asyncio.get_running_loop().create_task(self._write_pause(seconds))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _admit(self) -> float:
        """0 when a slot was taken, else the seconds to wait before asking again."""
        async with self.store.connection() as conn, conn.transaction():
            await conn.execute(LOCK, _LOCK_CLASS, self.account)
            now, count, oldest, paused = await conn.fetchrow(STATE, self.account, self.window)
            delay = (paused or 0.0) - now
            if count >= self.rate.count:
                delay = max(delay, oldest + self.window - now)
            if delay > 0:
                return float(delay)
            await conn.execute(ADMIT, self.account, now, self.window)
            return 0.0

    async def _write_pause(self, seconds: float) -> None:
        try:
            async with self.store.connection() as conn:
                await conn.execute(PAUSE, self.account, seconds)
        except Exception:
            # This process still honours the pause; the others learn of MTA's limit from
            # their own 429s.
            log.exception("could not share an MTA pause of %.1fs with other replicas", seconds)
