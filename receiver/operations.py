"""Operator operations over the `Store` port, shared by the dashboard and the CLI.

Reads return plain frozen dataclasses; actions are conditional statements
(``UPDATE ... WHERE state = ...``) that return whether they changed anything, so two
operators clicking at once, or an operator racing the worker, can never both win.
SQL is portable: ``?`` placeholders, no SQLite-only functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .fallback.resends import CANCELLED, SCHEDULED, UNKNOWN, Resend, Resends
from .mta.phones import legacy_key
from .mta.statuses import STATUS_NAMES
from .store import DEAD, FAILED, PENDING, HandlerRun, MessageState, Store, sql

DAY = 86_400.0
DROPPED = "dropped by operator"
RESENT = "resend ordered by operator"

_EVENT_COLUMNS = (
    "id, type, name, message_id, status, phone, received_at, state, attempts,"
    " duplicates, last_error, run_after, finished_at, source"
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


async def list_events(store: Store, filters: EventFilter | None = None) -> list[EventRow]:
    """Events matching ``filters``, newest first."""
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
    rows = await store.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events{clause} ORDER BY id DESC LIMIT ?",
        (*params, max(1, min(f.limit, 500))),
    )
    return [EventRow(*row) for row in rows]


async def message_timeline(store: Store, message_id: str) -> Timeline:
    """Every event of one message (each status, its duplicates count, its handler runs),
    its forward-only state, and its resend."""
    rows = await store.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE message_id = ? ORDER BY id",
        (message_id,),
    )
    events = [EventRow(*row) for row in rows]
    runs: dict[int, list[HandlerRun]] = {}
    if events:
        for event_id, handler, state, attempts, error in await store.fetch(
            "SELECT event_id, handler, state, attempts, last_error FROM handler_runs"
            f" WHERE event_id IN ({sql.marks(events)}) ORDER BY event_id, handler",
            [e.id for e in events],
        ):
            runs.setdefault(event_id, []).append(HandlerRun(handler, state, attempts, error))
    resends = Resends(store)
    return Timeline(
        message_id=message_id,
        state=await store.message_state(message_id),
        entries=tuple(TimelineEntry(e, tuple(runs.get(e.id, ()))) for e in events),
        resend=await resends.get(message_id),
        resend_of=await resends.find_by_resend(None, message_id),
    )


async def headline(store: Store, now: float) -> Headline:
    """Events of the last 24 hours by type, and the `backlog`."""
    by_type = await store.fetch(
        "SELECT type, COUNT(*) FROM events WHERE received_at >= ? GROUP BY type ORDER BY type",
        (now - DAY,),
    )
    waiting = await backlog(store, now)
    return Headline(
        events_24h={kind: int(n) for kind, n in by_type},
        pending=waiting.pending,
        oldest_pending_age=waiting.oldest_pending_age,
        dead_letters=waiting.dead_letters,
        resends=waiting.resends,
    )


async def backlog(store: Store, now: float) -> Backlog:
    """Pending events and how long the longest-due one has waited, dead letters, resends
    by state."""
    # State literals, not parameters: only then can the planners use the partial
    # indexes events_pending and events_dead instead of reading every event.
    pending = await store.fetch(
        f"SELECT COUNT(*), MIN(run_after) FROM events WHERE state = '{PENDING}'"
    )
    dead = await store.fetch(f"SELECT COUNT(*) FROM events WHERE state = '{DEAD}'")
    resends = await store.fetch("SELECT state, COUNT(*) FROM resends GROUP BY state ORDER BY state")
    count, oldest = pending[0]
    return Backlog(
        pending=int(count),
        oldest_pending_age=None if oldest is None else max(0.0, now - float(oldest)),
        dead_letters=int(dead[0][0]),
        resends={state: int(n) for state, n in resends},
    )


async def awaiting_decision(store: Store, limit: int = 100) -> list[Resend]:
    """Resends in state ``unknown``: an operator decides to resend or drop them."""
    return await Resends(store).in_state(UNKNOWN, limit)


async def retry_dead_letter(store: Store, event_id: int, now: float) -> bool:
    """Put a dead-lettered event back in the queue, due now; False when it is not dead.

    Only the handlers that died run again: their runs go back to ``failed`` with their
    attempts reset, so each gets a full ``max_attempts`` again; handlers that finished stay
    done. The event keeps its attempt count (history) and loses its lease.
    """
    return bool(await retry_dead_letters(store, [event_id], now))


async def retry_dead_letters(store: Store, event_ids: Sequence[int], now: float) -> list[int]:
    """`retry_dead_letter` for many events, 500 to a statement; the ids re-queued.

    The runs are reset *before* the events: a worker can claim an event the moment it is
    pending, and must not find a ``dead`` run then (it would dead-letter it again at once).
    """
    retried: list[int] = []
    for chunk in sql.chunked(event_ids):
        marks = sql.marks(chunk)
        await store.execute(
            "UPDATE handler_runs SET state = ?, attempts = 0, updated_at = ? WHERE state = ?"
            f" AND event_id IN (SELECT id FROM events WHERE id IN ({marks}) AND state = ?)",
            (FAILED, now, DEAD, *chunk, DEAD),
        )
        rows = await store.fetch_write(
            "UPDATE events SET state = ?, run_after = ?, lease_owner = NULL, lease_until = NULL,"
            f" finished_at = NULL WHERE id IN ({marks}) AND state = ? RETURNING id",
            (PENDING, now, *chunk, DEAD),
        )
        retried += (int(row[0]) for row in rows)
    return sorted(retried)


async def resend_unknown(store: Store, original_message_id: str, now: float) -> bool:
    """An operator decided: send the SMS resend now. Only from ``unknown``."""
    return await Resends(store).transition(
        original_message_id,
        SCHEDULED,
        from_=(UNKNOWN,),
        now=now,
        due_at=now,
        reason=RESENT,
        lease_owner=None,
        lease_until=None,
    )


async def drop_resend(store: Store, original_message_id: str, now: float) -> bool:
    """An operator decided: never send this resend. Only from ``unknown``."""
    return await Resends(store).transition(
        original_message_id, CANCELLED, from_=(UNKNOWN,), now=now, reason=DROPPED
    )


__all__ = [
    "Backlog",
    "EventFilter",
    "EventRow",
    "Headline",
    "Timeline",
    "TimelineEntry",
    "awaiting_decision",
    "backlog",
    "drop_resend",
    "headline",
    "list_events",
    "message_timeline",
    "resend_unknown",
    "retry_dead_letter",
    "retry_dead_letters",
]
