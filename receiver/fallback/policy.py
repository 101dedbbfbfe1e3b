"""The fallback's rules, each written once: which statuses are never resent, and which
resend state may follow which (`MOVES`, the one transition table).

The iMessage→SMS feature lives in ``receiver/fallback/``: this policy (pure rules), the
outbox that sends due resends (outbox.py), what a resend says (content.py), our own send
path (send.py) and the wiring from settings (wiring.py). The built-in handlers that
schedule, cancel and follow resends are ``handlers/fallback.py``: written with the same
API a user's handlers get, they import their rules from here. The tables are the store's
(receiver/store/resends.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.statuses import DELIVERED, NEVER_RESEND, STATUS_NAMES, STOPPED_NUMBER
from ..store.records import ResendState
from ..store.resends import Resends

S = ResendState
TAG = "fallbackOf"  # tag naming the original messageId on every resend
LATE_NEVER_RESEND = NEVER_RESEND - {STOPPED_NUMBER}
"""Never-resend statuses the outbox looks for among a message's events right before a
send; a status 11 is an opt-out and reaches the outbox through the opt-out list."""
DELIVERED_REASON = STATUS_NAMES[DELIVERED]
"""Why a resend is not (or no more) needed: the original was delivered (status 4)."""
OPERATOR_DROPPED = "dropped by operator"
OPERATOR_RESENT = "resend ordered by operator"


class Move(StrEnum):
    """Every transition of a resend, named by why it happens."""

    SEND = "send"  # the outbox marks it in flight before calling MTA
    POSTPONE = "postpone"  # a step failed outside MTA (the store, a text lookup)
    CANCEL = "cancel"  # the outbox found the original delivered (before or while sending)
    SKIP = "skip"  # the outbox found it must not go (opt-out, 10/12, no text)
    NEVER_RESEND = "never_resend"  # a 10, 11 or 12 webhook came after the failure
    ACCEPTED = "accepted"  # MTA accepted the send
    REJECT = "reject"  # MTA refused it (4xx)
    RETRY = "retry"  # MTA unavailable, nothing sent: try again later
    GIVE_UP = "give_up"  # MTA unavailable for every attempt
    RECONCILE = "reconcile"  # outcome unknown: wait for the resend's own webhook
    RESEND_UNANSWERED = "resend_unanswered"  # no webhook came; configured to send again
    ASK_OPERATOR = "ask_operator"  # no webhook came; an operator decides
    OPERATOR_RESEND = "operator_resend"
    OPERATOR_DROP = "operator_drop"
    LEARN_ID = "learn_id"  # a webhook of the resend tells its messageId: it went out
    ARRIVED = "arrived"  # the resend was delivered
    RESEND_FAILED = "resend_failed"  # the resend itself failed


@dataclass(frozen=True, slots=True)
class Rule:
    """A move's target state and the states it may start from."""

    sources: frozenset[ResendState]
    to: ResendState


def _rule(sources: set[ResendState], to: ResendState) -> Rule:
    return Rule(frozenset(sources), to)


MOVES: dict[Move, Rule] = {
    Move.SEND: _rule({S.SCHEDULED}, S.SENDING),
    Move.POSTPONE: _rule({S.SCHEDULED}, S.SCHEDULED),
    # The outbox holds the lease: SENDING here means its send was withdrawn unsent.
    Move.CANCEL: _rule({S.SCHEDULED, S.SENDING}, S.CANCELLED),
    Move.SKIP: _rule({S.SCHEDULED, S.SENDING}, S.SKIPPED),
    # A handler does not hold the lease: never from SENDING, the send may be out.
    Move.NEVER_RESEND: _rule({S.SCHEDULED}, S.SKIPPED),
    Move.ACCEPTED: _rule({S.SENDING, S.RECONCILING}, S.SENT),
    Move.REJECT: _rule({S.SENDING}, S.REJECTED),
    Move.RETRY: _rule({S.SENDING}, S.SCHEDULED),
    Move.GIVE_UP: _rule({S.SENDING}, S.FAILED),
    Move.RECONCILE: _rule({S.SENDING}, S.RECONCILING),
    Move.RESEND_UNANSWERED: _rule({S.RECONCILING}, S.SCHEDULED),
    Move.ASK_OPERATOR: _rule({S.RECONCILING}, S.UNKNOWN),
    # Only from UNKNOWN: an operator's resend of a row in flight would send it twice.
    Move.OPERATOR_RESEND: _rule({S.UNKNOWN}, S.SCHEDULED),
    Move.OPERATOR_DROP: _rule({S.UNKNOWN}, S.CANCELLED),
    Move.LEARN_ID: _rule({S.SENDING, S.RECONCILING, S.UNKNOWN}, S.SENT),
    Move.ARRIVED: _rule({S.SENT, S.FAILED}, S.DELIVERED),
    Move.RESEND_FAILED: _rule({S.SENT}, S.FAILED),
}


def entered_from(state: ResendState) -> frozenset[ResendState]:
    """Every state a resend may reach ``state`` from (the union of the moves into it)."""
    return frozenset().union(*(r.sources for r in MOVES.values() if r.to == state))


async def move(
    resends: Resends,
    original_message_id: str,
    step: Move,
    *,
    now: float,
    account: str = DEFAULT_ACCOUNT,
    **fields: object,
) -> bool:
    """Apply ``step`` to the resend of ``original_message_id`` of ``account`` (one
    conditional statement); set ``fields`` too. Whether it moved."""
    rule = MOVES[step]
    return await resends.transition(
        original_message_id, rule.to, from_=rule.sources, now=now, account=account, **fields
    )


def same_recipient(a: str | None, b: str | None) -> bool:
    """Whether two numbers (E.164) may be the same recipient: one send has one messageId
    for all its recipients (docs/mta.md), so a DELIVERED to one of them says nothing of
    another's failure. An unknown number may be anyone."""
    return a is None or b is None or a == b


def never_resend_reason(status: int) -> str:
    """The skip reason of a never-resend status: MTA's name for it."""
    return STATUS_NAMES.get(status, "never_resend")


async def operator_resend(
    resends: Resends, original_message_id: str, now: float, account: str = DEFAULT_ACCOUNT
) -> bool:
    """An operator decided: send the SMS resend now. Only from ``unknown``."""
    return await move(
        resends,
        original_message_id,
        Move.OPERATOR_RESEND,
        now=now,
        account=account,
        due_at=now,
        reason=OPERATOR_RESENT,
        lease_owner=None,
        lease_until=None,
    )


async def operator_drop(
    resends: Resends, original_message_id: str, now: float, account: str = DEFAULT_ACCOUNT
) -> bool:
    """An operator decided: never send this resend. Only from ``unknown``."""
    return await move(
        resends,
        original_message_id,
        Move.OPERATOR_DROP,
        now=now,
        account=account,
        reason=OPERATOR_DROPPED,
    )
