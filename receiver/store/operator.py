"""What the dashboard, the CLI and the /metrics gauges read: events, a message's
timeline, the headline figures and the backlog, resend listings.

Reads return plain frozen dataclasses (or dicts for the CLI's JSON), rows mapped by name.
The operator's actions (retries, replays, purges) are in receiver/store/maintenance.py.
"""

from __future__ import annotations

from typing import Any

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.phones import legacy_key
from . import reports, sql
from .connector import Connector, named
from .records import DEAD, PENDING, HandlerRun, MessageState, Resend, ResendState
from .resends import Resends
from .views import (
    DAY,
    EVENT_DETAIL_COLUMNS,
    EVENT_ROW_COLUMNS,
    RESEND_LIST_COLUMNS,
    RUN_COLUMNS,
    Backlog,
    EventFilter,
    EventRow,
    Headline,
    Timeline,
    TimelineEntry,
)


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

    async def webhooks_per_hour(
        self, since: float, account: str | None = None
    ) -> list[reports.HourCount]:
        """Webhooks received since ``since`` per hour and event name (a chart)."""
        return await reports.webhooks_per_hour(self._db, since, account)

    async def resend_outcomes(
        self, since: float, account: str | None = None
    ) -> list[reports.OutcomeCount]:
        """Resends last changed since ``since`` by state and reason (a chart)."""
        return await reports.resend_outcomes(self._db, since, account)

    async def by_account(self, now: float) -> list[reports.AccountCounts]:
        """Events of the last 24 hours, pending events and dead letters of each account
        that has any (the dashboard's per-account figures; the totals are `headline`'s)."""
        return await reports.by_account(self._db, now - DAY)

    async def awaiting_decision(self, limit: int = 100) -> list[Resend]:
        """Resends in state ``unknown``: an operator decides to resend or drop them."""
        return await Resends(self._db).in_state(ResendState.UNKNOWN, limit)

    async def dead_letter_ids(self, account: str | None = None) -> list[int]:
        """The ids of every dead-lettered event (of ``account``, or of all)."""
        if account is None:
            rows = await self._db.fetch(f"SELECT id FROM events WHERE state = '{DEAD}'")
        else:
            rows = await self._db.fetch(
                f"SELECT id FROM events WHERE state = '{DEAD}' AND account = ?", (account,)
            )
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


__all__ = [
    "DAY",
    "EVENT_DETAIL_COLUMNS",
    "EVENT_ROW_COLUMNS",
    "RESEND_LIST_COLUMNS",
    "RUN_COLUMNS",
    "Backlog",
    "EventFilter",
    "EventRow",
    "Headline",
    "Operator",
    "Timeline",
    "TimelineEntry",
]
