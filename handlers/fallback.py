"""iMessage → SMS fallback: schedule one resend when an iMessage fails for good.

MTA falls back to SMS by itself in several cases and no webhook says when it did
(docs/mta.md, "iMessage route and SMS"). So a failure only *schedules* a resend,
``RECEIVER_FALLBACK_GRACE_SECONDS`` later; any DELIVERED of the message before then
cancels it, and the outbox (receiver/fallback/outbox.py) checks again right before
sending. Invalid, opted-out and landline numbers (10, 11, 12) are never resent, nor
numbers that opted out, nor our own resends (their webhooks only update the resend's
state), nor a failure older than ``RECEIVER_FALLBACK_MAX_AGE`` (one a backfill found
late: its date is MTA's, receiver/backfill/).

These handlers use only what any handler gets (``ctx.store``, a narrow view of the
store); the rules they apply (the never-resend set, the resend transitions) are written
once in receiver/fallback/policy.py, the rest of the feature in receiver/fallback/.
"""

from __future__ import annotations

import re

from receiver import Context, Event, Registry
from receiver.backfill.mark import occurred_at
from receiver.fallback.policy import (
    DELIVERED_REASON,
    TAG,
    Move,
    move,
    never_resend_reason,
    same_recipient,
)
from receiver.mta.phones import e164
from receiver.mta.statuses import FAILURES, NEVER_RESEND, DeliveryStatus
from receiver.mta.times import parse_time
from receiver.store.records import ResendState
from receiver.store.resends import DOUBLE_DELIVERY, STATUS_11, STOP_REPLY

registry = Registry()

# Carrier opt-out keywords (CTIA, and the FCC's "revoke" and "opt out"); MTA passes STOP
# through as a message-reply (docs/mta.md). In any case, punctuation ignored: a reply that is
# one of them ("Stop.", "END", "opt-out"), or that begins with an unambiguous one ("STOP
# ALL", "Stop please"; "Cancel my appointment" is not an opt-out).
STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "opt out"}
)
LEADING_STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "revoke", "optout"})
# The carrier keywords that undo a STOP (CTIA): the only thing that lifts an opt-out.
START_WORDS = frozenset({"start", "unstop"})
_WORD = re.compile(r"[a-z]+")


def is_stop(text: str) -> bool:
    """Whether a reply opts the number out."""
    words = _WORD.findall(text.lower())
    return bool(words) and (
        " ".join(words) in STOP_WORDS
        or words[0] in LEADING_STOP_WORDS
        or words[:2] == ["opt", "out"]
    )


def is_start(text: str) -> bool:
    """Whether a reply opts the number back in to SMS (START, UNSTOP; punctuation ignored)."""
    return " ".join(_WORD.findall(text.lower())) in START_WORDS


def is_resend(event: Event) -> bool:
    """Whether a webhook is about one of our own resends (never a reason to resend)."""
    return TAG in event.tags or ".sms-fallback." in (event.external_id or "")


@registry.on("message-reply")
async def remember_stop(event: Event, ctx: Context) -> None:
    """A STOP reply opts the number out of every future resend; START/UNSTOP lifts that
    (never a status 11 opt-out: that one is MTA's record)."""
    if not (event.phone and event.text):
        return
    # The reply's own time, not its arrival: a START that reaches us late (a retry after
    # a 503, a backlog) must not lift a STOP the person sent after it.
    sent_at = parse_time(event.raw.get("timestamp")) or event.received_at
    if is_stop(event.text):
        await ctx.store.resends.opt_out(event.phone, STOP_REPLY, sent_at, event.account)
        ctx.log.info("number opted out by reply")
    elif is_start(event.text):
        if await ctx.store.resends.opt_in(event.phone, sent_at, event.account):
            ctx.log.info("number opted in again by reply")
        else:
            ctx.log.info("START reply lifted nothing (no STOP before it, or status 11)")


# No handler for number-opt-in: it is the iMessage/RCS opt-in to a Sender Identity, not
# SMS consent (docs/mta.md, "number-opt-in"), so it never lifts an SMS opt-out.


@registry.on("delivery-status", "message-send")
async def follow_resend(event: Event, ctx: Context) -> None:
    """Our resend's own webhooks: learn its messageId, then whether it arrived."""
    if not is_resend(event):
        return
    resends = ctx.store.resends
    resend = await resends.find_by_resend(event.external_id, event.message_id, event.account)
    if resend is None and event.tags.get(TAG):  # MTA echoed our tags, not the externalId
        resend = await resends.get(event.tags[TAG], event.account)
    if resend is None:
        ctx.log.warning("webhook tagged as a resend matches no resend we made")
        return
    original, now = resend.original_message_id, event.received_at
    if event.message_id and resend.resend_message_id is None:
        # Reconciles a send whose answer we never got (timeout, dropped connection).
        await move(
            resends,
            original,
            Move.LEARN_ID,
            now=now,
            account=event.account,
            resend_message_id=event.message_id,
            sent_at=now,
        )
    if event.status == DeliveryStatus.DELIVERED:
        await move(resends, original, Move.ARRIVED, now=now, account=event.account)
    elif event.status in FAILURES:
        await move(
            resends,
            original,
            Move.RESEND_FAILED,
            now=now,
            account=event.account,
            reason=f"resend {event.status_name}",
        )


@registry.on("delivery-status.stopped-number")
async def remember_stopped_number(event: Event, ctx: Context) -> None:
    """Status 11 (the recipient opted out) opts the number out, on any message, our own
    resends included."""
    if event.phone:
        await ctx.store.resends.opt_out(event.phone, STATUS_11, event.received_at, event.account)


@registry.on("delivery-status")
async def fallback(event: Event, ctx: Context) -> None:
    """Schedule, skip or cancel the resend of an original message."""
    if is_resend(event) or event.message_id is None or event.status is None:
        return
    resends, settings = ctx.store.resends, ctx.settings
    original, now = event.message_id, event.received_at
    if event.status in NEVER_RESEND:
        # Invalid, opted out or a landline, learnt after a failure scheduled a resend.
        never = never_resend_reason(event.status)
        if await move(
            resends, original, Move.NEVER_RESEND, now=now, account=event.account, reason=never
        ):
            ctx.log.info("scheduled resend skipped: %s", never)
            return
    if event.status == DeliveryStatus.DELIVERED:
        outcome = await resends.original_delivered(original, now, event.phone, event.account)
        if outcome == ResendState.CANCELLED:
            ctx.log.info("resend cancelled: the original was delivered (MTA's own fallback?)")
        elif outcome == DOUBLE_DELIVERY:
            ctx.log.warning("double delivery: the original arrived after its SMS resend")
        return
    account = settings.accounts.get(event.account)  # its own key and fallback settings
    if account is None or not account.fallback_enabled or account.mta_api_key is None:
        return
    eligible = event.status in account.fallback_statuses and event.status not in NEVER_RESEND
    if not (eligible or event.status in NEVER_RESEND) or not await _went_as_imessage(event, ctx):
        return
    if await resends.find_by_resend(None, original, event.account) is not None:
        return  # a webhook of our own resend that came without our tags and externalId
    reason = await _skip_reason(event, ctx)
    # A backfilled failure happened when MTA says: MTA's own fallback has had that long.
    failed_at = occurred_at(event)
    if reason is None and now - failed_at > settings.fallback_max_age:
        reason = "too_old"
    claimed = await resends.schedule(
        original_message_id=original,
        phone=event.phone,
        tags=dict(event.tags),
        original_external_id=event.external_id,
        failure_status=event.status,
        failed_at=failed_at,
        due_at=max(now, failed_at + account.fallback_grace_seconds),
        now=now,
        state=ResendState.SKIPPED if reason else ResendState.SCHEDULED,
        reason=reason,
        account=event.account,
    )
    if not claimed:
        held = await resends.get(original, event.account)
        if held is not None and not same_recipient(held.phone, event.phone):
            # One resend per messageId (one send, several recipients): the first failed
            # recipient holds it; say so rather than drop this one silently.
            ctx.log.warning(
                "no resend for this recipient: message %s already has its one resend,"
                " for another recipient (sends with several recipients: docs/fallback.md)",
                original,
            )
    if claimed:
        ctx.log.info(
            "resend %s%s%s",
            "skipped: " if reason else "scheduled",
            reason or "",
            f" (failed {now - failed_at:.0f} s ago, over RECEIVER_FALLBACK_MAX_AGE)"
            if reason == "too_old"
            else "",
        )


async def _went_as_imessage(event: Event, ctx: Context) -> bool:
    """The iMessage route: a Sender Identity on this or an earlier webhook of the message,
    a tag the sender set, or our own send path (docs/mta.md: senderName/longcodeId pick it)."""
    if event.sender_name:
        return True
    wanted = ctx.settings.fallback_imessage_tags
    if wanted and any(event.tags.get(key) == value for key, value in wanted):
        return True
    state = await ctx.message_state(event.message_id)
    if state is not None and state.sender_name:
        return True
    sent = await ctx.store.resends.sent_message(event.message_id or "", event.account)
    return sent is not None and sent[1] is not None


async def _skip_reason(event: Event, ctx: Context) -> str | None:
    if event.status in NEVER_RESEND:
        return never_resend_reason(event.status)
    if event.phone is None:
        return "number_unknown"
    if "@" in e164(event.phone):  # an Apple ID email gets no SMS
        return "not_a_phone_number"
    if await ctx.opted_out(event.phone):
        return "opted_out"
    if await ctx.store.resends.delivered_to(event.message_id or "", event.phone, event.account):
        return DELIVERED_REASON
    return None


__all__ = ["is_resend", "registry"]
