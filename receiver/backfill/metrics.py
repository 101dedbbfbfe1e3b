"""The backfill's Prometheus metrics, on the process's registry (receiver/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class BackfillMetrics:
    """Rows read, statuses stored, gaps repaired, the last successful run; by account
    (each reads its own records with its own key, and one account's success must not
    hide another's failing runs)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows_read = Counter(
            "receiver_backfill_rows_read",
            "Rows of MTA's GET /deliveries read by backfills",
            ["account"],
            registry=registry,
        )
        self.stored = Counter(
            "receiver_backfill_stored",
            "Delivery statuses a backfill stored (their webhooks were lost)",
            ["account"],
            registry=registry,
        )
        self.gaps_repaired = Counter(
            "receiver_backfill_gaps_repaired",
            "Backfill runs that stored at least one lost status",
            ["account"],
            registry=registry,
        )
        self.last_success = Gauge(
            "receiver_backfill_last_success_timestamp_seconds",
            "When this process last finished a backfill without error",
            ["account"],
            registry=registry,
        )
