"""What a resend says and whether it may still go out: the outbox's questions about the
message, apart from how the outbox moves resends between states (outbox.py)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable

from ..errors import PayloadError
from ..mta.events import DEFAULT_ACCOUNT, normalize
from ..mta.payload import parse
from ..mta.readback import ReadBack
from ..store import Resend, Store
from .policy import (
    DELIVERED_REASON,
    LATE_NEVER_RESEND,
    TAG,
    Move,
    never_resend_reason,
)

SMS_CHARACTERS = 160
"""Longer texts go as MMS (up to 1,550 characters, docs/mta.md "Sending")."""

NO_LONGCODE = (
    "resends are on without RECEIVER_FALLBACK_LONGCODE_ID: MTA sends them from the"
    " account's default number, which goes as iMessage again if it carries a Sender"
    " Identity; set it to a longcode without one (docs/fallback.md)"
)

TextLookup = Callable[..., Awaitable[str | None]]
"""A user's ``async def lookup(original_message_id, account) -> text | None``; one
without ``account`` serves a deployment of one account (docs/accounts.md)."""


def takes_account(lookup: TextLookup) -> bool:
    """Whether ``lookup`` can be told the account (a parameter ``account``, or
    ``**kwargs``): message ids repeat across accounts, so only then can it tell two
    messages of one id apart."""
    try:
        parameters = inspect.signature(lookup).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return False
    return any(p.name == "account" or p.kind is p.VAR_KEYWORD for p in parameters)


async def called_off(
    store: Store, resend: Resend, global_opt_outs: bool = False
) -> tuple[Move, str] | None:
    """(move, reason) when ``resend`` must not go out (any more), else None: the original
    was delivered, the number opted out, or a 10 or 12 came after the failure (the
    message's state keeps its first failure, so those show only among its events).
    ``global_opt_outs``: a STOP in any account counts (RECEIVER_OPT_OUT_SCOPE=global)."""
    resends = store.resends
    if await resends.delivered_to(resend.original_message_id, resend.phone, resend.account):
        return Move.CANCEL, DELIVERED_REASON
    if resend.phone is None or await resends.opted_out(
        resend.phone, None if global_opt_outs else resend.account
    ):
        return Move.SKIP, "opted_out"
    never = await resends.status_among(
        resend.original_message_id, LATE_NEVER_RESEND, resend.account
    )
    if never is not None:
        return Move.SKIP, never_resend_reason(never)
    return None


async def original_text(
    store: Store,
    original: str,
    lookup: TextLookup | None = None,
    account: str = DEFAULT_ACCOUNT,
    readback: ReadBack | None = None,
) -> str | None:
    """The original's text: from our own send path, its ``message-send`` webhook, the
    user's lookup, or MTA's record of the message (``readback``, the account's); None
    when nobody knows it."""
    resends = store.resends
    sent = await resends.sent_message(original, account)
    if sent is not None:
        return sent[0]
    body = await resends.send_event_body(original, account)
    if body is not None:
        with contextlib.suppress(PayloadError):
            text = normalize(parse(body), 0.0).text
            if text:
                return text
    if lookup is not None:
        text = await (
            lookup(original, account=account) if takes_account(lookup) else lookup(original)
        )
        if text is not None:
            return text
    return await readback.text(original) if readback is not None else None


def send_payload(
    resend: Resend,
    text: str,
    imessage_tags: tuple[tuple[str, str], ...],
    longcode_id: str | None = None,
) -> dict[str, object]:
    """The ``POST /send`` body of ``resend``: the same text to the one number, as SMS (MMS
    past 160 characters), the original's tags less its iMessage marks, plus ours.

    Never a ``senderName``; with ``longcode_id``, that longcode. Leaving ``senderName`` out
    forces nothing: MTA sends from the account's default number, and a longcode with a
    Sender Identity goes as iMessage to iMessage-capable recipients. Only a longcode
    without one forces SMS (docs/mta.md, "iMessage route and SMS")."""
    marks = set(imessage_tags)  # an SMS is not on that route
    tags = {k: v for k, v in resend.tags.items() if (k, v) not in marks}
    payload: dict[str, object] = {
        "subscribers": [resend.phone],
        "message": text,
        "externalId": resend.external_id,
        "tags": {**tags, TAG: resend.original_message_id},
    }
    if longcode_id:
        payload["longcodeId"] = int(longcode_id) if longcode_id.isdigit() else longcode_id
    if len(text) > SMS_CHARACTERS:
        payload["isMMS"] = True  # MTA answers 400 to longer SMS text (docs/mta.md)
    return payload
