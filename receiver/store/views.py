"""What the operator's reads return (receiver/store/operator.py): plain frozen
dataclasses, and the columns each is read from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.statuses import STATUS_NAMES
from .records import HandlerRun, MessageState, Resend

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
