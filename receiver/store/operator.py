"""What the dashboard, the CLI and the /metrics gauges read: events, a message's
timeline, the headline figures and the backlog, resend listings.

Reads return plain frozen dataclasses (or dicts for the CLI's JSON), rows mapped by name.
The operator's actions (retries, replays, purges) are in receiver/store/maintenance.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.phones import legacy_key
from ..mta.statuses import STATUS_NAMES
from . import reports, sql
from .connector import Connector, named
from .records import DEAD, PENDING, HandlerRun, MessageState, Resend, ResendState
from .resends import Resends

DAY = 86_400.0


def _columns(names: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in names.split(","))


EVENT_ROW_COLUMNS = _columns(
    "id, type, name, message_id, status, phone, received_at, state, attempts, duplicates,"
    " last_error, run_after, finished_at, source, account"
)
# The CLI's rows of one event (``events show``, ``events replay``): its own columns.
EVENT_DETAIL_COLUMNS = _columns(
    "id, type, name, message_id, status, external_id, phone, state, attempts, duplicates,"
    " received_at, finished_at, last_error, source, account"
)
RUN_COLUMNS = _columns("handler, state, attempts, last_error, updated_at")
RESEND_LIST_COLUMNS = _columns(
    "original_message_id, state, reason, phone, failure_status, failed_at, due_at, attempts,"
    " sent_at, resend_message_id, double_delivery, account"
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event as an operator sees it (no body)."""

    id: int
    type: str
    name: str
    message_id: str | None
    status: int | None
    phone: str | None
    received_at: float
    state: str
    attempts: int
    duplicates: int
    last_error: str | None
    run_after: float
    finished_at: float | None
    source: str = "webhook"  # or "backfill": read back from MTA (receiver/backfill/)
    account: str = DEFAULT_ACCOUNT  # the MTA account it came from (docs/accounts.md)

    @property
    def status_name(self) -> str | None:
        """MTA's name for the delivery status, ``unknown`` for codes newer than us."""
        return None if self.status is None else STATUS_NAMES.get(self.status, "unknown")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Criteria of `list_events`; None means "any". ``number`` matches any spelling."""

    type: str | None = None  # an event type (``delivery-status``) or name (``...delivered``)
    state: str | None = None  # pending, done, dead, quarantined
    status: int | None = None  # MTA delivery status code
    number: str | None = None
    message_id: str | None = None
    since: float | None = None  # received_at >= since (epoch seconds)
    until: float | None = None  # received_at < until
    before_id: int | None = None  # keyset paging: only ids below this one
    account: str | None = None  # one MTA account's events (docs/accounts.md)
    limit: int = 50


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a message and the handler runs it caused."""

    event: EventRow
    runs: tuple[HandlerRun, ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything known about one message, in receipt order."""

    message_id: str
    state: MessageState | None
    entries: tuple[TimelineEntry, ...]
    resend: Resend | None  # the SMS resend of this message, if one was considered
    resend_of: Resend | None  # when this message is itself the resend of another
    account: str = DEFAULT_ACCOUNT

    @property
    def found(self) -> bool:
        """Whether the receiver knows this message at all."""
        return bool(self.state or self.entries or self.resend or self.resend_of)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in the store (the dashboard's figures and the /metrics gauges)."""

    pending: int = 0
    # How long the pending event due longest ago has been due: from its run_after, not its
    # arrival, so an old event waiting out a retry's backoff does not look like a stuck queue.
    oldest_pending_age: float | None = None
    dead_letters: int = 0
    resends: Mapping[str, int] = field(default_factory=dict)  # by state


@dataclass(frozen=True, slots=True)
class Headline(Backlog):
    """The figures at the top of the dashboard: the backlog and the last 24 hours."""

    events_24h: Mapping[str, int] = field(default_factory=dict)  # by event type


class Operator:
    """The operator's reads of a store."""

    __slots__ = ("_db",)

    def __init__(self, db: Connector) -> None:
        self._db = db

    async def list_events(self, filters: EventFilter | None = None) -> list[EventRow]:
        """Events matching ``filters``, newest first (at most 500)."""
        f = filters or EventFilter()
        where: list[str] = []
        params: list[object] = []
        if f.type:
            where.append("(type = ? OR name = ?)")
            params += [f.type, f.type]
        for column, value in (
            ("state", f.state),
            ("status", f.status),
            ("message_id", f.message_id),
            ("account", f.account),
        ):
            if value is not None and value != "":
                where.append(f"{column} = ?")
                params.append(value)
        if f.number and (digits := legacy_key(f.number)):
            # Digits only (the national part of a NANP number, so stored E.164 and older
            # national spellings both match), and no LIKE wildcard can come from the input.
            where.append("phone LIKE ?")
            params.append(f"%{digits}")
        if f.since is not None:
            where.append("received_at >= ?")
            params.append(f.since)
        if f.until is not None:
            where.append("received_at < ?")
            params.append(f.until)
        if f.before_id is not None:
            where.append("id < ?")
            params.append(f.before_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetch(
            f"SELECT {', '.join(EVENT_ROW_COLUMNS)} FROM events{clause} ORDER BY id DESC LIMIT ?",
            (*params, max(1, min(f.limit, 500))),
        )
        return [EventRow(**named(EVENT_ROW_COLUMNS, row)) for row in rows]

    async def message_timeline(self, message_id: str, account: str = DEFAULT_ACCOUNT) -> Timeline:
        """Every event of one message of ``account`` (each status, its duplicates count,
        its handler runs), its forward-only state, and its resend."""
        rows = await self._db.fetch(
            f"SELECT {', '.join(EVENT_ROW_COLUMNS)} FROM events"
            " WHERE message_id = ? AND account = ? ORDER BY id",
            (message_id, account),
        )
        events = [EventRow(**named(EVENT_ROW_COLUMNS, row)) for row in rows]
        runs: dict[int, list[HandlerRun]] = {}
        if events:
            for row in await self._db.fetch(
                f"{sql.SELECT_RUNS} WHERE event_id IN ({sql.marks(events)})"
                " ORDER BY event_id, handler",
                [e.id for e in events],
            ):
                run = named(("event_id", "handler", "state", "attempts", "last_error"), row)
                runs.setdefault(run.pop("event_id"), []).append(HandlerRun(**run))
        resends = Resends(self._db)
        state = await self._db.fetch(sql.SELECT_MESSAGE, (account, message_id))
        return Timeline(
            message_id=message_id,
            state=MessageState.from_row(state[0]) if state else None,
            entries=tuple(TimelineEntry(e, tuple(runs.get(e.id, ()))) for e in events),
            resend=await resends.get(message_id, account),
            resend_of=await resends.find_by_resend(None, message_id, account),
            account=account,
        )

    async def headline(self, now: float) -> Headline:
        """Events of the last 24 hours by type, and the `backlog`."""
        by_type = await self._db.fetch(
            "SELECT type, COUNT(*) FROM events WHERE received_at >= ? GROUP BY type ORDER BY type",
            (now - DAY,),
        )
        waiting = await self.backlog(now)
        return Headline(
            events_24h={kind: int(n) for kind, n in by_type},
            pending=waiting.pending,
            oldest_pending_age=waiting.oldest_pending_age,
            dead_letters=waiting.dead_letters,
            resends=waiting.resends,
        )

    async def backlog(self, now: float) -> Backlog:
        """Pending events and how long the longest-due one has waited, dead letters,
        resends by state."""
        # State literals, not parameters: only then can the planners use the partial
        # indexes events_pending and events_dead instead of reading every event.
        pending = await self._db.fetch(
            f"SELECT COUNT(*), MIN(run_after) FROM events WHERE state = '{PENDING}'"
        )
        dead = await self._db.fetch(f"SELECT COUNT(*) FROM events WHERE state = '{DEAD}'")
        resends = await self._db.fetch(
            "SELECT state, COUNT(*) FROM resends GROUP BY state ORDER BY state"
        )
        count, oldest = pending[0]
        return Backlog(
            pending=int(count),
            oldest_pending_age=None if oldest is None else max(0.0, now - float(oldest)),
            dead_letters=int(dead[0][0]),
            resends={state: int(n) for state, n in resends},
        )

    async def event_body(self, event_id: int) -> reports.EventBody | None:
        """The raw body and handler runs of one event (the dashboard's event page)."""
        return await reports.event_body(self._db, event_id)

    async def webhooks_per_hour(self, since: float) -> list[reports.HourCount]:
        """Webhooks received since ``since`` per hour and event name (a chart)."""
        return await reports.webhooks_per_hour(self._db, since)

    async def resend_outcomes(self, since: float) -> list[reports.OutcomeCount]:
        """Resends last changed since ``since`` by state and reason (a chart)."""
        return await reports.resend_outcomes(self._db, since)

    async def awaiting_decision(self, limit: int = 100) -> list[Resend]:
        """Resends in state ``unknown``: an operator decides to resend or drop them."""
        return await Resends(self._db).in_state(ResendState.UNKNOWN, limit)

    async def dead_letter_ids(self) -> list[int]:
        """The ids of every dead-lettered event."""
        rows = await self._db.fetch(f"SELECT id FROM events WHERE state = '{DEAD}'")
        return [int(row[0]) for row in rows]

    async def event_id(self, dedup_key: str) -> int | None:
        """The id of the event stored under ``dedup_key``, if any."""
        rows = await self._db.fetch("SELECT id FROM events WHERE dedup_key = ?", (dedup_key,))
        return int(rows[0][0]) if rows else None

    async def one_event(self, event_id: int) -> dict[str, Any] | None:
        """The operator's row of one event, or None."""
        rows = await self._db.fetch(
            f"SELECT {', '.join(EVENT_DETAIL_COLUMNS)} FROM events WHERE id = ?", (event_id,)
        )
        return named(EVENT_DETAIL_COLUMNS, rows[0]) if rows else None

    async def event_detail(self, event_id: int) -> dict[str, Any] | None:
        """One event with its handler runs and its raw body (text when it decodes)."""
        columns = (*EVENT_DETAIL_COLUMNS, "body")
        rows = await self._db.fetch(
            f"SELECT {', '.join(columns)} FROM events WHERE id = ?", (event_id,)
        )
        if not rows:
            return None
        event = named(columns, rows[0])
        body = bytes(event.pop("body"))
        event["raw"] = body.decode("utf-8", errors="replace")
        runs = await self._db.fetch(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM handler_runs"
            " WHERE event_id = ? ORDER BY handler",
            (event_id,),
        )
        event["handler_runs"] = [named(RUN_COLUMNS, r) for r in runs]
        return event

    async def list_resends(
        self, state: ResendState | None, limit: int = 100, account: str | None = None
    ) -> list[dict[str, Any]]:
        """Resends (of one account, or all), most recently changed first."""
        where: list[str] = []
        params: list[object] = []
        if state is not None:
            where.append("state = ?")
            params.append(str(state))
        if account is not None:
            where.append("account = ?")
            params.append(account)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetch(
            f"SELECT {', '.join(RESEND_LIST_COLUMNS)} FROM resends{clause}"
            " ORDER BY updated_at DESC LIMIT ?",
            (*params, limit),
        )
        return [named(RESEND_LIST_COLUMNS, row) for row in rows]
