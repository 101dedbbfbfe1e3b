"""One backfill: page through MTA's ``GET /deliveries`` for a date window and store
every status the receiver does not hold, as the webhook MTA failed to deliver.

"Held" means an event with the row's dedup key is stored (this status from a webhook or
an earlier backfill), or the message's state already stands at the row's status or
past it for the same recipient (a webhook said "delivery failed" (6) where MTA's list
says ``undelivered`` (9): nothing new, nothing re-dispatched). A word without a code
is held once the message's state is final. Everything else goes in through
`Store.ingest`, like a webhook, and is then marked ``source = backfill``.

MTA's list requests fall under its general limit (30 per minute, docs/mta.md "Limits
and errors"): pages are paced to `PAGES_PER_MINUTE`, leaving room for other reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.paging import Lister, pages
from ..mta.ratelimit import Limiter, Rate, SlidingWindowLimiter
from ..mta.statuses import DELIVERED, FAILURES, STATUS_NAMES, rank
from ..store import Incoming, Store
from ..store.backfill import BackfillStore
from .rows import DeliveryRow, read_row
from .twin import incoming

log = logging.getLogger("receiver.backfill")

PAGES_PER_MINUTE = 10
"""Our share of MTA's 30/min general limit for ``/deliveries`` pages (read-back of sent
messages takes 20, receiver/mta/readback.py; a 429 is waited out all the same)."""
MAX_PAGES = 400
"""The most pages one run reads (10,000 rows at MTA's default 25)."""


@dataclass(frozen=True, slots=True)
class Window:
    """The days a backfill covers, both included (MTA filters by date)."""

    since: date
    until: date

    def query(self) -> dict[str, str]:
        """MTA's date filters for this window (docs/mta.md, "Reading back")."""
        return {
            "filters[startDate]": self.since.isoformat(),
            "filters[endDate]": self.until.isoformat(),
        }

    @property
    def start(self) -> float:
        """The window's first second: the date of a row that has none (the oldest it can be)."""
        return datetime.combine(self.since, dtime(), tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Found:
    """A status the run stored, or would store (``--dry-run``)."""

    message_id: str
    status: str
    phone: str | None
    at: float | None


@dataclass(slots=True)
class Summary:
    """What one run did."""

    pages: int = 0
    rows_read: int = 0
    held: int = 0
    stored: int = 0
    unreadable: int = 0
    found: list[Found] = field(default_factory=list)


def pace() -> Limiter:
    """A limiter of `PAGES_PER_MINUTE` (share one across the runs of a process)."""
    return SlidingWindowLimiter(Rate(PAGES_PER_MINUTE, 60.0))


class _Paced:
    """A `Lister` that waits for a slot of ``limiter`` before each request."""

    def __init__(self, client: Lister, limiter: Limiter) -> None:
        self.client = client
        self.limiter = limiter

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        await self.limiter.acquire()
        return await self.client.request(method, path, **kwargs)


async def backfill(
    client: Lister,
    store: Store,
    window: Window,
    *,
    country: str = "1",
    dry_run: bool = False,
    limiter: Limiter | None = None,
    on_page: Callable[[Summary], None] = lambda summary: None,
    on_stored: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.time,
    summary: Summary | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> Summary:
    """Read ``window`` from MTA and store what is missing; ``on_page`` after each page,
    ``on_stored`` after each stored status (wake the worker). Counts go to ``summary``
    (a new one by default), so a caller still has them when a page fails. ``client``
    reads ``account``'s records; what it stores is that account's."""
    limiter = limiter or pace()
    summary = summary if summary is not None else Summary()
    held_here = store.backfill
    paced = _Paced(client, limiter)
    async for rows in pages(
        paced, "deliveries", query=window.query(), max_pages=MAX_PAGES, odd=True
    ):
        summary.pages += 1
        for raw in rows:
            summary.rows_read += 1
            row = read_row(raw)
            if row is None:
                summary.unreadable += 1
                shape = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
                log.warning("backfill: unreadable /deliveries row: %s", shape)
                continue
            item = incoming(row, clock(), window.start, country, account)
            if await _held(store, held_here, row, item):
                summary.held += 1
                continue
            found = Found(row.message_id, _status(row), item.phone, row.at)
            if dry_run:
                summary.found.append(found)
                continue
            result = await store.ingest(item)
            if result.duplicate:  # its webhook came in meanwhile
                summary.held += 1
                continue
            await held_here.mark_backfilled(result.event_id)
            summary.stored += 1
            summary.found.append(found)
            on_stored()
        on_page(summary)
    return summary


async def _held(store: Store, held_here: BackfillStore, row: DeliveryRow, item: Incoming) -> bool:
    if await held_here.held(item.dedup_key):
        return True
    state = await store.message_state(row.message_id, item.account)
    if state is None or state.status is None or state.phone != item.phone:
        return False
    if row.status is None:
        return state.status in FAILURES or state.status == DELIVERED  # a final state
    return rank(state.status) >= rank(row.status)


def _status(row: DeliveryRow) -> str:
    if row.status is None:
        return f"{row.word} (no code)"
    return f"{row.status} {STATUS_NAMES.get(row.status, 'unknown')}"
