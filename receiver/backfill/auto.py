"""Automatic repair: backfill the gap a silent receiver left, and (optionally) a rolling
window on a timer, in the background of ``serve``/``worker``.

At start-up the freshest worker heartbeat in the store says when webhooks were last
taken in by anyone; older than ``RECEIVER_BACKFILL_GAP_SECONDS`` means every process was
down (or cut off) for that long, and MTA gave up on what it sent meanwhile (at most two
retries, docs/mta.md "Webhooks MTA sends to us"): the days from then to today are
backfilled. ``RECEIVER_BACKFILL_INTERVAL`` (off by default) also backfills the last
interval's days every interval, for losses no restart shows (a proxy dropping posts).
Either way one process backfills at a time (the lease of receiver/backfill/repair.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.paging import Lister
from ..settings import Settings
from ..store import Store
from .metrics import BackfillMetrics
from .repair import repair
from .run import Window, pace

log = logging.getLogger("receiver.backfill")

MARGIN_SECONDS = 3600.0
"""Read this much before the gap too: MTA's retries of the last webhooks may have failed."""


def _day(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class AutoRepair:
    """The start-up repair and the rolling backfill of one process."""

    def __init__(
        self,
        store: Store,
        client: Lister,
        settings: Settings,
        metrics: BackfillMetrics,
        *,
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self.notify = notify
        self.clock = clock
        self.sleep = sleep
        self.account = account  # whose records ``client`` reads
        self.limiter = pace()  # one pace for all of this process's runs

    async def gap(self) -> Window | None:
        """The days to repair at start-up, or None (no gap, or no worker ever ran here).
        Call it before this process's first heartbeat."""
        threshold = self.settings.backfill_gap_seconds
        if threshold <= 0:
            return None
        last = await self.store.backfill.last_heartbeat()
        now = self.clock()
        if last is None or now - last <= threshold:
            return None
        log.warning(
            "no worker heartbeat for %.0f s (over RECEIVER_BACKFILL_GAP_SECONDS): backfilling"
            " the gap from MTA's records",
            now - last,
        )
        return Window(_day(last - MARGIN_SECONDS).date(), _day(now).date())

    async def run(self, gap: Window | None) -> None:
        """Repair ``gap``, then backfill the last interval every interval (if set)."""
        if gap is not None:
            await self._once(gap, "startup")
        interval = self.settings.backfill_interval
        while interval > 0:
            await self.sleep(interval)
            now = self.clock()
            window = Window(_day(now - interval - MARGIN_SECONDS).date(), _day(now).date())
            await self._once(window, "interval")

    async def _once(self, window: Window, cause: str) -> None:
        try:
            await repair(
                self.client,
                self.store,
                window,
                cause=cause,
                country=self.settings.default_country_code,
                metrics=self.metrics,
                limiter=self.limiter,
                on_stored=self.notify,
                clock=self.clock,
                account=self.account,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # MTA or the store down: the next run tries again
            log.error(
                "backfill (%s) failed: %s: %s",
                cause,
                type(exc).__name__,
                exc,
                extra={"account": self.account},  # whose key MTA refused, say
            )
