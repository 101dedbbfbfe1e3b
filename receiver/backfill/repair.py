"""A backfill run as the CLI and the automatic repair start it: one process at a time
(a lease in the store, so across replicas), its record kept, its metrics counted."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.paging import Lister
from ..mta.ratelimit import Limiter
from ..store import Store
from ..store.backfill import BackfillStore, RunRecord
from .metrics import BackfillMetrics
from .run import Summary, Window, backfill

log = logging.getLogger("receiver.backfill")

LEASE = "backfill"
"""The default account's lease name; another account's is ``backfill:NAME`` (each account
is read with its own key, so two accounts may backfill at once)."""
LEASE_SECONDS = 300.0
"""How long a run holds the lease without renewing it (it renews after every page)."""


class LeaseLost(Exception):
    """Another process took the backfill lease over (ours expired mid-run)."""


async def repair(
    client: Lister,
    store: Store,
    window: Window,
    *,
    cause: str,
    country: str = "1",
    metrics: BackfillMetrics | None = None,
    limiter: Limiter | None = None,
    on_page: Callable[[Summary], None] = lambda summary: None,
    on_stored: Callable[[], None] = lambda: None,
    owner: str | None = None,
    clock: Callable[[], float] = time.time,
    account: str = DEFAULT_ACCOUNT,
) -> Summary | None:
    """Backfill ``window`` of ``account`` under its lease; None when another process
    holds it."""
    kept = store.backfill
    owner = owner or f"backfill-{uuid.uuid4().hex[:12]}"
    lease = LEASE if account == DEFAULT_ACCOUNT else f"{LEASE}:{account}"
    if not await kept.take_lease(lease, owner, clock(), LEASE_SECONDS):
        log.info(
            "backfill (%s): another process is backfilling; not started",
            cause,
            extra={"account": account},  # each account is read with its own key
        )
        return None
    started = clock()
    summary = Summary()
    error: str | None = None
    try:
        await backfill(
            _Renewing(client, kept, lease, owner, clock),
            store,
            window,
            country=country,
            limiter=limiter,
            on_page=on_page,
            on_stored=on_stored,
            clock=clock,
            summary=summary,
            account=account,
        )
    except BaseException as exc:  # recorded, then raised (a cancelled run too)
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        await kept.record_run(
            RunRecord(
                cause,
                window.since.isoformat(),
                window.until.isoformat(),
                started,
                clock(),
                summary.rows_read,
                summary.held,
                summary.stored,
                summary.unreadable,
                error,
                account,
            )
        )
        await kept.release_lease(lease, owner)
        if metrics is not None:
            metrics.rows_read.labels(account).inc(summary.rows_read)
            metrics.stored.labels(account).inc(summary.stored)
            if summary.stored:
                metrics.gaps_repaired.labels(account).inc()
            if error is None:
                metrics.last_success.labels(account).set(clock())
    log.info(
        "backfill (%s) %s..%s: %d rows read, %d already held, %d stored, %d unreadable",
        cause,
        window.since,
        window.until,
        summary.rows_read,
        summary.held,
        summary.stored,
        summary.unreadable,
        extra={"account": account},
    )
    return summary


class _Renewing:
    """A `Lister` that renews the lease before each page; `LeaseLost` if it cannot."""

    def __init__(
        self,
        client: Lister,
        kept: BackfillStore,
        lease: str,
        owner: str,
        clock: Callable[[], float],
    ) -> None:
        self.client, self.kept, self.lease = client, kept, lease  # the run's own account's
        self.owner, self.clock = owner, clock

    async def request(self, method: str, path: str, **kwargs: object) -> dict[str, object]:
        if not await self.kept.take_lease(self.lease, self.owner, self.clock(), LEASE_SECONDS):
            raise LeaseLost("another process took the backfill lease over")
        return await self.client.request(method, path, **kwargs)
