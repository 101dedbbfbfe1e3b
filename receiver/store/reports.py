"""Read-only queries behind the dashboard's pages: one event in full, and the hourly
counts its charts draw. Portable SQL (``?`` placeholders), the same on both backends.

Hours are whole UNIX hours: ``CAST(received_at AS BIGINT) / 3600`` truncates on SQLite
and PostgreSQL alike (integer division of a positive integer), where ``FLOOR`` is
missing from SQLite builds without the math functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connector import Connector, named
from .records import HandlerRun

EVENT_BODY = "SELECT body, external_id FROM events WHERE id = ?"
EVENT_RUNS = (
    "SELECT handler, state, attempts, last_error FROM handler_runs"
    " WHERE event_id = ? ORDER BY handler"
)
WEBHOOKS_PER_HOUR = (
    "SELECT CAST(received_at AS BIGINT) / 3600, type, name, COUNT(*) FROM events"
    " WHERE received_at >= ? GROUP BY CAST(received_at AS BIGINT) / 3600, type, name"
)
RESEND_OUTCOMES = (
    "SELECT state, reason, COUNT(*) FROM resends WHERE updated_at >= ?"
    " GROUP BY state, reason ORDER BY state, reason"
)

# Each statement's columns, in its SELECT order: rows are mapped by these names.
_RUN = ("handler", "state", "attempts", "last_error")
_HOUR = ("hour", "type", "name", "count")
_OUTCOME = ("state", "reason", "count")


@dataclass(frozen=True, slots=True)
class EventBody:
    """What the event page shows beyond the list's row: the raw body and handler runs."""

    raw: str  # decoded as UTF-8, undecodable bytes replaced
    external_id: str | None
    runs: tuple[HandlerRun, ...]


@dataclass(frozen=True, slots=True)
class HourCount:
    """Webhooks of one event name received in one UNIX hour."""

    hour: int  # received_at // 3600
    type: str
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """Resends that reached ``state`` (for ``reason``) in the window."""

    state: str
    reason: str | None
    count: int


async def event_body(db: Connector, event_id: int) -> EventBody | None:
    """The raw body and handler runs of one event, or None."""
    rows = await db.fetch(EVENT_BODY, (event_id,))
    if not rows:
        return None
    event = named(("body", "external_id"), rows[0])
    runs = [named(_RUN, row) for row in await db.fetch(EVENT_RUNS, (event_id,))]
    return EventBody(
        bytes(event["body"]).decode("utf-8", errors="replace"),
        event["external_id"],
        tuple(HandlerRun(**{**run, "attempts": int(run["attempts"])}) for run in runs),
    )


async def webhooks_per_hour(db: Connector, since: float) -> list[HourCount]:
    """Stored webhooks received since ``since``, counted per hour and event name."""
    rows = await db.fetch(WEBHOOKS_PER_HOUR, (since,))
    counts = [named(_HOUR, row) for row in rows]
    return [HourCount(int(c["hour"]), c["type"], c["name"], int(c["count"])) for c in counts]


async def resend_outcomes(db: Connector, since: float) -> list[OutcomeCount]:
    """Resends last changed since ``since``, counted by state and reason."""
    rows = await db.fetch(RESEND_OUTCOMES, (since,))
    counts = [named(_OUTCOME, row) for row in rows]
    return [OutcomeCount(c["state"], c["reason"], int(c["count"])) for c in counts]
