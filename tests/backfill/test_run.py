"""One backfill run against rows of every shape MTA's undocumented /deliveries may use,
on each store backend; and the lease that keeps runs one at a time."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from receiver.backfill.repair import LEASE, repair
from receiver.backfill.rows import read_row
from receiver.backfill.run import PAGES_PER_MINUTE, Window, backfill
from receiver.mta.events import dedup_key, identify
from receiver.mta.ratelimit import Rate, SlidingWindowLimiter
from receiver.mta.readback import READS_PER_MINUTE
from receiver.store import Store
from receiver.web.incoming import incoming_from

from ..conftest import delivery, encode

WINDOW = Window(dt.date(2026, 1, 1), dt.date(2026, 1, 2))


class Pages:
    """A `Lister` serving ``rows`` in pages of two, counted from ``first``."""

    def __init__(self, rows: list[Any], first: int = 0) -> None:
        self.rows, self.first = rows, first
        self.calls: list[dict[str, Any] | None] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        params = kwargs.get("params")
        self.calls.append(params)
        assert (method, path) == ("GET", "deliveries")
        page = int((params or {}).get("page", self.first))
        start = (page - self.first) * 2
        chunk = self.rows[start : start + 2]
        return {"rows": chunk, "page": page, "pageSize": 2, "total": len(self.rows)}


SHAPES = [
    {"messageId": 1, "to": "+15550000001", "status": "delivered", "date": "2026-01-01T10:00:00Z"},
    {"id": "2", "number": "5550000002", "status": "Sent"},
    {"messageId": 3, "phone": "+15550000003", "status": 6, "date": 1767261600000},
    {"messageId": 4, "destinationNumber": "+15550000004", "status": "undeliverable"},
    {"to": "+15550000005", "status": "delivered"},  # no message: unreadable
    {"messageId": 6, "to": "+15550000006"},  # no status: unreadable
    "not an object",
]


def test_read_row_maps_only_unambiguous_words() -> None:
    """delivered/sent/undelivered become 4/3/9; the other words keep no code; numbers stay."""
    codes = {w: read_row({"id": 1, "status": w}) for w in ("delivered", "sent", "undelivered")}
    assert {w: r.status for w, r in codes.items() if r} == {
        "delivered": 4,
        "sent": 3,
        "undelivered": 9,
    }
    for word in ("undeliverable", "unknown", "rejected"):
        row = read_row({"id": 1, "status": word.upper()})
        assert row is not None
        assert (row.status, row.word) == (None, word)
    assert read_row({"id": 1, "status": "11"}).status == 11  # type: ignore[union-attr]
    assert read_row({"id": 1, "status": True}) is None


@pytest.mark.parametrize("first", [0, 1])
async def test_every_shape_is_read_or_counted(store: Store, first: int) -> None:
    """Each id/recipient/status spelling is stored with its raw row; rows without a
    message or a status are counted unreadable; 0- and 1-based pages alike."""
    lister = Pages(SHAPES, first)
    summary = await backfill(lister, store, WINDOW)
    assert (summary.rows_read, summary.stored, summary.unreadable, summary.held) == (7, 4, 3, 0)
    assert lister.calls[0] == {"filters[startDate]": "2026-01-01", "filters[endDate]": "2026-01-02"}
    rows = await store.fetch(
        "SELECT message_id, status, phone, source, name FROM events ORDER BY message_id"
    )
    assert rows == [
        ("1", 4, "+15550000001", "backfill", "delivery-status.delivered"),
        ("2", 3, "+15550000002", "backfill", "delivery-status.sent"),
        ("3", 6, "+15550000003", "backfill", "delivery-status.delivery-failed"),
        ("4", None, "+15550000004", "backfill", "delivery-status.unknown"),
    ]
    again = await backfill(Pages(SHAPES, first), store, WINDOW)
    assert (again.stored, again.held, again.unreadable) == (0, 4, 3)


async def test_a_status_a_webhook_delivered_is_held(store: Store) -> None:
    """A webhook's status (or a higher one for the recipient) makes the row held: a
    webhook's 6 and MTA's undelivered (9) are the same failure, not dispatched twice."""
    for status in (6,):
        body = encode(delivery(message_id=50, status=status, destinationNumber="+15550000050"))
        await store.ingest(incoming_from(body, 1.0, 0))
    rows = [
        {"messageId": 50, "to": "+15550000050", "status": "undelivered"},
        {"messageId": 50, "to": "+15550000050", "status": "undeliverable"},
        {"messageId": 51, "to": "+15550000051", "status": "delivered"},
    ]
    summary = await backfill(Pages(rows), store, WINDOW)
    assert (summary.held, summary.stored) == (2, 1)
    body = encode(delivery(message_id=51, status=4, destinationNumber="+15550000051"))
    late = incoming_from(body, 2.0, 0)
    assert late.dedup_key == dedup_key(
        identify(delivery(51, 4, destinationNumber="+15550000051")), body
    )
    assert (await store.ingest(late)).duplicate


async def test_one_backfill_at_a_time(store: Store) -> None:
    """While one process holds the lease another's run does not start; released after a
    run, expired after a crash; every finished run is recorded."""
    kept = store.backfill
    assert await kept.take_lease(LEASE, "other", 100.0, 60.0)
    assert await repair(Pages([]), store, WINDOW, cause="test", clock=lambda: 120.0) is None
    done = await repair(Pages(SHAPES), store, WINDOW, cause="test", clock=lambda: 200.0)
    assert done is not None
    assert done.stored == 4
    assert await kept.take_lease(LEASE, "next", 201.0, 60.0)  # released by the run
    run = await kept.last_run()
    assert run is not None
    assert (run.cause, run.rows_read, run.stored, run.unreadable, run.error) == (
        "test",
        7,
        4,
        3,
        None,
    )
    assert await kept.last_success() == 200.0


async def test_pages_are_paced_under_mtas_general_limit(store: Store) -> None:
    """A long run reads no more than PAGES_PER_MINUTE pages in any minute (MTA allows 30
    a minute on its general endpoints, read-back takes 20 of them)."""
    now = [0.0]
    times: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    class Timed(Pages):
        async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            times.append(now[0])
            return await super().request(method, path, **kwargs)

    rows = [{"messageId": n, "to": f"+1555000{n:04d}", "status": "sent"} for n in range(50)]
    limiter = SlidingWindowLimiter(Rate(PAGES_PER_MINUTE, 60.0), clock=lambda: now[0], sleep=sleep)
    summary = await backfill(Timed(rows), store, WINDOW, limiter=limiter)
    assert (summary.pages, summary.stored) == (25, 50)
    assert PAGES_PER_MINUTE + READS_PER_MINUTE <= 30
    for start in times:
        assert len([t for t in times if start <= t < start + 60]) <= PAGES_PER_MINUTE


async def test_each_account_backfills_under_its_own_lease(store: Store) -> None:
    """Another account's run takes and renews its own lease, never the default account's:
    it runs while a process backfills the default account, and leaves that lease free."""
    kept = store.backfill
    assert await kept.take_lease(LEASE, "other", 100.0, 60.0)  # the default's run
    done = await repair(
        Pages(SHAPES), store, WINDOW, cause="test", clock=lambda: 120.0, account="brand-b"
    )
    assert done is not None
    assert done.stored == 4
    assert [tuple(r) for r in await store.fetch("SELECT DISTINCT account FROM events")] == [
        ("brand-b",)
    ]
    assert await kept.take_lease(f"{LEASE}:brand-b", "next", 121.0, 60.0)  # released
    await kept.release_lease(LEASE, "other")
    again = await repair(
        Pages(SHAPES), store, WINDOW, cause="test", clock=lambda: 200.0, account="brand-c"
    )
    assert again is not None
    assert await kept.take_lease(LEASE, "next", 201.0, 60.0)  # brand-c's run left it free


async def test_backfill_lines_name_the_account(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Each account backfills with its own key: a run's lines say whose records they
    were (a rejected key or a stuck lease is that account's to fix)."""
    await store.backfill.take_lease(f"{LEASE}:brand-b", "other", 100.0, 60.0)
    with caplog.at_level(logging.INFO, "receiver.backfill"):
        await repair(Pages([]), store, WINDOW, cause="test", clock=lambda: 120.0, account="brand-b")
        await repair(Pages([]), store, WINDOW, cause="test", clock=lambda: 200.0, account="brand-b")
    assert [getattr(r, "account", None) for r in caplog.records] == ["brand-b", "brand-b"]
