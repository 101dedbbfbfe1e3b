"""Values that cross the store boundary."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.statuses import STATUS_NAMES

MAX_ID = 2**63 - 1
"""The largest id (and integer) either database stores: a longer one is no row's."""

PENDING = "pending"
DONE = "done"
DEAD = "dead"
QUARANTINED = "quarantined"
EVENT_STATES = (PENDING, DONE, DEAD, QUARANTINED)
FAILED = "failed"  # a handler run that will be retried


class ResendState(StrEnum):
    """Where an SMS resend stands (the ``resends`` table's ``state``); which state may
    follow which is receiver/fallback/policy.py's transition table."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    RECONCILING = "reconciling"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


RESEND_OUT = frozenset(
    {
        ResendState.SENDING,
        ResendState.RECONCILING,
        ResendState.SENT,
        ResendState.DELIVERED,
        ResendState.FAILED,
        ResendState.UNKNOWN,
    }
)
"""After these, the resend may have reached the person."""
RESEND_ACTIVE = frozenset({ResendState.SCHEDULED, ResendState.SENDING, ResendState.RECONCILING})
"""The outbox still works on these (a purge keeps their numbers and texts)."""


class Incoming(NamedTuple):
    """An authentic webhook, ready to be committed before we answer 200.

    A named tuple, not a frozen dataclass: it is built once per webhook, and a frozen
    dataclass sets each of its fields through ``object.__setattr__``, at twice the cost.
    """

    dedup_key: str
    type: str
    name: str
    received_at: float
    secret_index: int
    body: bytes
    message_id: str | None = None
    status: int | None = None
    status_rank: int = -1
    external_id: str | None = None
    phone: str | None = None
    sender_name: str | None = None
    state: str = PENDING
    error: str | None = None
    account: str = DEFAULT_ACCOUNT

    def event_row(self) -> tuple[Any, ...]:
        """Values for ``sql.EVENT_COLUMNS``, in that order (every adapter inserts these)."""
        return (
            self.dedup_key,
            self.type,
            self.name,
            self.message_id,
            self.status,
            self.external_id,
            self.phone,
            self.received_at,
            self.secret_index,
            self.body,
            self.state,
            self.received_at,  # run_after: due at once
            self.error,
            self.account,
        )

    @property
    def status_at(self) -> float | None:
        """When the message's status changed, for the ``messages`` row (None: no status)."""
        return self.received_at if self.status is not None else None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Where an incoming webhook landed: a new row, or the row it duplicates."""

    event_id: int
    duplicate: bool


def ingest_results(
    items: Sequence[Incoming], landed: Iterable[tuple[str, int, bool]]
) -> list[IngestResult]:
    """Each item's result, from ``(dedup_key, id, inserted)`` rows of a batch insert.

    A key inserted now: its first item is new, the others duplicates. A key that
    existed: every item duplicates it.
    """
    rows: dict[str, tuple[int, bool]] = {}
    for key, event_id, inserted in landed:
        rows[key] = (event_id, inserted or rows.get(key, (0, False))[1])
    seen: set[str] = set()
    results = []
    for item in items:
        event_id, inserted = rows[item.dedup_key]
        results.append(IngestResult(event_id, not inserted or item.dedup_key in seen))
        seen.add(item.dedup_key)
    return results


@dataclass(frozen=True, slots=True)
class HandlerRun:
    """The record of one handler on one event."""

    handler: str
    state: str
    attempts: int
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A pending event leased to one worker."""

    id: int
    type: str
    name: str
    message_id: str | None
    received_at: float
    body: bytes
    attempts: int
    runs: dict[str, HandlerRun] = field(default_factory=dict)
    account: str = DEFAULT_ACCOUNT


def claimed_events(leased: Iterable[Any], runs: Iterable[Any]) -> list[Claimed]:
    """`Claimed` events, oldest first, from the claim's RETURNING rows (sql.LEASE) and
    the `sql.SELECT_RUNS` rows of their handler runs."""
    by_event: dict[int, dict[str, HandlerRun]] = {}
    for event_id, handler, state, attempts, error in runs:
        by_event.setdefault(event_id, {})[handler] = HandlerRun(handler, state, attempts, error)
    claimed = [
        Claimed(
            id, kind, name, message_id, received_at, body, attempts, by_event.get(id, {}), account
        )
        for id, kind, name, message_id, received_at, body, attempts, account in leased
    ]
    return sorted(claimed, key=lambda c: c.id)


@dataclass(frozen=True, slots=True)
class Completion:
    """What a worker decided about one claimed event."""

    event_id: int
    state: str
    run_after: float
    runs: tuple[HandlerRun, ...]
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class MessageState:
    """The latest status of one message, as the forward-only rules left it."""

    message_id: str
    status: int | None
    status_at: float | None
    first_seen: float
    phone: str | None
    external_id: str | None
    sender_name: str | None

    @property
    def status_name(self) -> str | None:
        """MTA's name for the status, ``unknown`` for codes newer than us."""
        return None if self.status is None else STATUS_NAMES.get(self.status, "unknown")

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MessageState:
        """A `MessageState` from a row of ``sql.SELECT_MESSAGE``, mapped by name."""
        return cls(**dict(zip(MESSAGE_COLUMNS, row, strict=True)))


MESSAGE_COLUMNS = (
    "message_id",
    "status",
    "status_at",
    "first_seen",
    "phone",
    "external_id",
    "sender_name",
)


RESEND_COLUMNS = (
    "original_message_id",
    "state",
    "reason",
    "phone",
    "text",
    "tags",
    "original_external_id",
    "external_id",
    "request_id",
    "failure_status",
    "failed_at",
    "due_at",
    "attempts",
    "sent_at",
    "resend_message_id",
    "mta_request_id",
    "double_delivery",
    "updated_at",
    "account",
)


@dataclass(frozen=True, slots=True)
class Resend:
    """One original message's resend and where it stands."""

    original_message_id: str
    state: ResendState
    reason: str | None
    phone: str | None
    text: str | None
    tags: dict[str, str]
    original_external_id: str | None
    external_id: str
    request_id: str
    failure_status: int | None
    failed_at: float
    due_at: float
    attempts: int
    sent_at: float | None
    resend_message_id: str | None
    mta_request_id: str | None
    double_delivery: bool
    updated_at: float
    account: str = DEFAULT_ACCOUNT
    """The MTA account of the original (and of its resend: its API key sends it)."""

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Resend:
        """A `Resend` from a row of `RESEND_COLUMNS`, mapped by name."""
        values = dict(zip(RESEND_COLUMNS, row, strict=True))
        values["state"] = ResendState(values["state"])
        values["tags"] = json.loads(values["tags"]) if values["tags"] else {}
        values["double_delivery"] = bool(values["double_delivery"])
        return cls(**values)
