"""Read-only queries behind the dashboard's pages: one event in full, and the hourly
counts its charts draw. Portable SQL (``?`` placeholders), the same on both backends.

Hours are whole UNIX hours: ``CAST(received_at AS BIGINT) / 3600`` truncates on SQLite
and PostgreSQL alike (integer division of a positive integer), where ``FLOOR`` is
missing from SQLite builds without the math functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connector import Connector, named
from .records import DEAD, PENDING, HandlerRun

EVENT_BODY = "SELECT body, external_id FROM events WHERE id = ?"
EVENT_RUNS = (
    "SELECT handler, state, attempts, last_error FROM handler_runs"
    " WHERE event_id = ? ORDER BY handler"
)
# {account}: empty, or " AND account = ?" for one account's chart.
WEBHOOKS_PER_HOUR = (
    "SELECT CAST(received_at AS BIGINT) / 3600, type, name, COUNT(*) FROM events"
    " WHERE received_at >= ?{account} GROUP BY CAST(received_at AS BIGINT) / 3600, type, name"
)
RESEND_OUTCOMES = (
    "SELECT state, reason, COUNT(*) FROM resends WHERE updated_at >= ?{account}"
    " GROUP BY state, reason ORDER BY state, reason"
)
# Three small aggregates rather than one: pending and dead each use their partial index
# (state as a literal), the 24 hours the index on received_at.
EVENTS_BY_ACCOUNT = "SELECT account, COUNT(*) FROM events WHERE received_at >= ? GROUP BY account"
PENDING_BY_ACCOUNT = (
    f"SELECT account, COUNT(*) FROM events WHERE state = '{PENDING}' GROUP BY account"
)
DEAD_BY_ACCOUNT = f"SELECT account, COUNT(*) FROM events WHERE state = '{DEAD}' GROUP BY account"

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


@dataclass(frozen=True, slots=True)
class AccountCounts:
    """One account's figures on the dashboard."""

    account: str
    events_24h: int = 0
    pending: int = 0
    dead_letters: int = 0


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


def _of(account: str | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if account is None else (" AND account = ?", (account,))


async def webhooks_per_hour(
    db: Connector, since: float, account: str | None = None
) -> list[HourCount]:
    """Stored webhooks received since ``since`` (of ``account``, or of all), counted per
    hour and event name."""
    clause, params = _of(account)
    rows = await db.fetch(WEBHOOKS_PER_HOUR.format(account=clause), (since, *params))
    counts = [named(_HOUR, row) for row in rows]
    return [HourCount(int(c["hour"]), c["type"], c["name"], int(c["count"])) for c in counts]


async def resend_outcomes(
    db: Connector, since: float, account: str | None = None
) -> list[OutcomeCount]:
    """Resends last changed since ``since`` (of ``account``, or of all), counted by state
    and reason."""
    clause, params = _of(account)
    rows = await db.fetch(RESEND_OUTCOMES.format(account=clause), (since, *params))
    counts = [named(_OUTCOME, row) for row in rows]
    return [OutcomeCount(c["state"], c["reason"], int(c["count"])) for c in counts]


async def by_account(db: Connector, since: float) -> list[AccountCounts]:
    """Per account with any of them: events received since ``since``, pending events,
    dead letters; by account name."""
    figures: dict[str, dict[str, int]] = {}
    for field, query, params in (
        ("events_24h", EVENTS_BY_ACCOUNT, (since,)),
        ("pending", PENDING_BY_ACCOUNT, ()),
        ("dead_letters", DEAD_BY_ACCOUNT, ()),
    ):
        for account, count in await db.fetch(query, params):
            figures.setdefault(str(account), {})[field] = int(count)
    return [AccountCounts(name, **counts) for name, counts in sorted(figures.items())]
