"""Planner statistics for the worker's claim: ANALYZE when they are missing or stale.

Without statistics (a fresh database filled before autovacuum's first pass, or
autovacuum off) PostgreSQL plans the claim as if `events` were nearly empty, and that
plan visits every pending event on each claim (docs/postgresql.md, "Keep autovacuum
on"). The store mends this itself, twice over:

- a worker starting on an `events` table that holds rows but was never analyzed
  analyzes it before its first claim (`Statistics.at_start`): a backlog accepted with
  ``--no-worker``, or left by an outage, is claimed with a good plan from the first batch;
- a claim slower than `SLOW_CLAIM_SECONDS` runs ANALYZE afterwards, at most once per
  `ANALYZE_EVERY_SECONDS` per process (`Statistics.after_claim`): statistics taken while
  the table was nearly empty go stale as a burst piles up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from .statements import ANALYZE_EVENTS, NEVER_ANALYZED

log = logging.getLogger("receiver.store")

SLOW_CLAIM_SECONDS = 0.01
"""A claim this slow (a healthy one takes about a millisecond) means the planner works
from missing or stale statistics. Low enough to catch a plan made while the table was
nearly empty before the pending events it visits pile up."""
ANALYZE_EVERY_SECONDS = 30.0
"""At most one slow-claim ANALYZE per process in this many seconds. Not much longer:
without autovacuum, statistics taken early in a burst (few events pending) mislead the
plans for the rest of it, and only the next ANALYZE mends them."""


class Statistics:
    """Runs ANALYZE on `events` when the claim needs it; never fails the caller."""

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[Any]],
        slow_claim_seconds: float = SLOW_CLAIM_SECONDS,
    ) -> None:
        self._connection = connection
        self.slow_claim_seconds = slow_claim_seconds
        """Claims slower than this run ANALYZE (`SLOW_CLAIM_SECONDS`)."""
        self._analyzed_at: float | None = None  # time.monotonic() of the last one

    async def at_start(self) -> None:
        """ANALYZE `events` if it holds rows but was never analyzed."""
        try:
            async with self._connection() as conn:
                never = await conn.fetchval(NEVER_ANALYZED)
        except Exception as exc:  # the first slow claim analyzes instead
            log.error("checking the statistics of events failed: %s: %s", type(exc).__name__, exc)
            return
        if never:
            log.info("events has rows but no planner statistics: running ANALYZE events")
            await self._analyze()

    async def after_claim(self, took: float) -> None:
        """ANALYZE `events` after a claim that took ``took`` seconds, if it was slow."""
        last = self._analyzed_at
        if took < self.slow_claim_seconds or (
            last is not None and time.monotonic() - last < ANALYZE_EVERY_SECONDS
        ):
            return
        log.warning(
            "a claim took %.3f s: running ANALYZE events for fresh planner statistics"
            " (is autovacuum off or behind? see `mta-receiver doctor`)",
            took,
        )
        await self._analyze()

    async def _analyze(self) -> None:
        self._analyzed_at = time.monotonic()  # a failed one is not retried at once either
        try:
            async with self._connection() as conn:
                await conn.execute(ANALYZE_EVENTS)
        except Exception as exc:  # nobody's work fails for this
            log.error("ANALYZE events failed: %s: %s", type(exc).__name__, exc)
