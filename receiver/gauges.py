"""Gauges read from the store at scrape time: the backlog, dead letters, resends by state.

Prometheus collectors are synchronous and the store is not, so ``GET /metrics`` awaits
`StoreGauges.refresh` first and `collect` yields what it read. The figures describe the
shared store, not one process: with several replicas every one reports the same values,
so aggregate them with ``max()``, never ``sum()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .store.operator import Backlog

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("receiver.metrics")


class StoreGauges(Collector):
    """A collector of the figures the last `refresh` read."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.figures = Backlog()
        self.up = False

    async def refresh(self, store: Store, now: float | None = None) -> None:
        """Read the figures; on failure keep the last ones and report ``up`` 0."""
        try:
            async with asyncio.timeout(self.timeout):
                self.figures = await store.operator.backlog(time.time() if now is None else now)
        except Exception as exc:
            self.up = False
            log.warning("metrics: reading the store failed: %s", exc)
            return
        self.up = True

    def describe(self) -> Iterable[Metric]:
        """The metric names (no samples), so the registry can check for clashes."""
        return self._families(Backlog(), up=False)

    def collect(self) -> Iterable[Metric]:
        """The figures of the last refresh."""
        return self._families(self.figures, self.up)

    @staticmethod
    def _families(figures: Backlog, up: bool) -> list[Metric]:
        depth = GaugeMetricFamily(
            "receiver_queue_depth", "Events waiting for handler runs (state pending)"
        )
        depth.add_metric([], figures.pending)
        age = GaugeMetricFamily(
            "receiver_queue_oldest_age_seconds",
            "Seconds the longest-due pending event has been due (0 when none is pending)",
        )
        age.add_metric([], figures.oldest_pending_age or 0.0)
        dead = GaugeMetricFamily(
            "receiver_dead_letter_events", "Events dead-lettered and not retried (state dead)"
        )
        dead.add_metric([], figures.dead_letters)
        resends = GaugeMetricFamily(
            "receiver_resends_by_state", "SMS resends in each state, now", labels=["state"]
        )
        for state, count in sorted(figures.resends.items()):
            resends.add_metric([state], count)
        healthy = GaugeMetricFamily(
            "receiver_store_gauges_up", "1 when the store figures above are from this scrape"
        )
        healthy.add_metric([], 1 if up else 0)
        return [depth, age, dead, resends, healthy]
