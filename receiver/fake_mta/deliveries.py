"""What the fake MTA serves under ``GET /deliveries``: the latest status of each message.

docs/mta.md ("Reading back"): ``GET /deliveries`` lists the latest status per message with
string statuses (sent, delivered, undelivered, undeliverable, unknown, rejected), filters
by date (``filters[startDate]``/``filters[endDate]``) and pages like every list; its row
fields are undocumented (third-party code reads messageId, externalId, status, date,
carrier, to). The fake serves those fields, one row per recipient of a send whose
timeline played (delivered to our webhooks or not), so its records agree with the sends
and webhooks it made. Which code becomes which word is MTA's secret: the fake's choice
below is a guess that keeps ``undeliverable`` and ``rejected`` ambiguous, as in MTA's list.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..mta import statuses as s

__all__ = ["WORDS", "date_filter", "delivery_rows", "word"]

WORDS: Mapping[int, str] = {
    s.QUEUED: "sent",
    s.SENDING: "sent",
    s.SENT: "sent",
    s.DELIVERED: "delivered",
    s.DELIVERY_UNCONFIRMED: "unknown",
    s.UNDELIVERED: "undelivered",
    s.SENDING_FAILED: "undeliverable",
    s.DELIVERY_FAILED: "undeliverable",
    s.INVALID_NUMBER: "undeliverable",
    s.STOPPED_NUMBER: "undeliverable",
    s.LANDLINE: "undeliverable",
    s.DELIVERY_REJECTED: "rejected",
    s.SEND_REJECTED: "rejected",
}


def word(status: int) -> str:
    """The string ``/deliveries`` shows for a status code."""
    return WORDS.get(status, "unknown")


def date_filter(raw: str | None, *, end: bool) -> float | None:
    """A ``filters[startDate]``/``filters[endDate]`` value as a timestamp; a bare date
    as the start of that day (``end``: the start of the next, so the day is included).
    None when absent; ValueError when unreadable."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if len(text) == 10:
        day = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        return (day + timedelta(days=1) if end else day).timestamp()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def delivery_rows(
    statuses: Mapping[tuple[int, str], tuple[int, float]],
    external_ids: Mapping[int, str | None],
    start: float | None,
    end: float | None,
) -> list[dict[str, Any]]:
    """The rows of ``/deliveries`` between ``start`` and ``end``, oldest first."""
    rows = []
    for (message_id, number), (status, at) in sorted(
        statuses.items(), key=lambda item: (item[1][1], item[0])
    ):
        if (start is not None and at < start) or (end is not None and at >= end):
            continue
        stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
        rows.append(
            {
                "messageId": message_id,
                "externalId": external_ids.get(message_id),
                "to": number,
                "status": word(status),
                "date": stamp.replace("+00:00", "Z"),
                "carrier": None,
            }
        )
    return rows
