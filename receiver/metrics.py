"""Prometheus metrics of one process, on a registry of its own (no module globals).

Counters are per process: with several processes, Prometheus scrapes each and ``sum()``
adds them up; the queue gauges come from the shared store, so take their ``max()``.

The ``account`` label (docs/accounts.md) only ever holds a configured account's name (or
``default``): it is set from the route a webhook came to, never from a request's own
text, so an unknown name's 404 adds no series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .backfill.metrics import BackfillMetrics
from .gauges import StoreGauges


class Metrics:
    """Every metric the receiver exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "receiver_webhooks_received",
            "Authentic webhooks accepted, by event type and account",
            ["event", "account"],
            registry=r,
        )
        self.rejected = Counter(
            "receiver_webhooks_rejected",
            "Webhooks refused before storage, by reason and account (empty before it is known)",
            ["reason", "account"],
            registry=r,
        )
        self.duplicates = Counter(
            "receiver_webhooks_duplicate",
            "Authentic webhooks that repeated a stored event, by event type and account",
            ["event", "account"],
            registry=r,
        )
        self.quarantined = Counter(
            "receiver_webhooks_quarantined",
            "Authentic bodies kept unparsed, by reason and account",
            ["reason", "account"],
            registry=r,
        )
        self.handler_runs = Counter(
            "receiver_handler_runs",
            "Handler runs, by handler, outcome and account",
            ["handler", "outcome", "account"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "receiver_handler_seconds",
            "Handler run time",
            ["handler"],
            registry=r,
        )
        self.resends = Counter(
            "receiver_resends",
            "SMS resends reaching a state (sent, rejected, unknown, ...), by account",
            ["state", "account"],
            registry=r,
        )
        self.resend_delay = Histogram(
            "receiver_resend_delay_seconds",
            "From the iMessage failure to the SMS resend",
            buckets=(1, 5, 30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=r,
        )
        self.mta_calls = Counter(
            "receiver_mta_calls",
            "MTA API calls, by endpoint and status (or error)",
            ["endpoint", "status"],
            registry=r,
        )
        self.rate_limit_wait = Counter(
            "receiver_mta_rate_limit_wait_seconds",
            "Time sends spent waiting on the rate limit",
            registry=r,
        )
        self.dead_letters = Counter(
            "receiver_dead_letters",
            "Events dead-lettered after their last attempt",
            registry=r,
        )
        self.worker_yields = Counter(
            "receiver_worker_yields",
            "Times the worker paused so webhooks waiting for their 200 went first",
            registry=r,
        )
        self.webhooks_waiting = Gauge(
            "receiver_webhooks_waiting",
            "Authentic webhooks waiting for their commit (their 200) right now",
            registry=r,
        )
        self.backfill = BackfillMetrics(r)
        # Read from the store at scrape time (GET /metrics awaits their refresh first).
        self.store_gauges = StoreGauges()
        r.register(self.store_gauges)
