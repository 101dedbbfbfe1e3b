"""Inbound webhooks the fake plays to registrations: a subscriber's reply, an opt-in.

MTA documents neither body (docs/mta.md, "message-reply", "number-opt-in"). A reply is
built from the fields integrations read (``fromNumber`` = the subscriber, ``toNumber`` =
our number, ``message``, ``replyId``, ``timestamp``); ``spelling="aws"`` uses the
``originationNumber``/``destinationNumber`` names one integration accepts. An opt-in
carries ``optInType`` and the subscriber's number under ``number``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

import httpx

from .records import WebhookDelivery
from .state import FakeMTA
from .timeline import MAX_RETRIES, DeliveryResult, WebhookEvent, deliver

__all__ = ["opt_in_event", "play_inbound", "reply_event"]

MESSAGE_REPLY = "message-reply"
NUMBER_OPT_IN = "number-opt-in"


def reply_event(
    subscriber: str,
    our_number: str,
    text: str,
    *,
    reply_id: int | None = None,
    timestamp: str | None = None,
    spelling: Literal["mta", "aws"] = "mta",
) -> WebhookEvent:
    """A ``message-reply`` from ``subscriber`` to ``our_number``."""
    sender, receiver = (
        ("fromNumber", "toNumber")
        if spelling == "mta"
        else ("originationNumber", "destinationNumber")
    )
    fields: dict[str, object] = {
        sender: subscriber,
        receiver: our_number,
        "message": text,
        "timestamp": timestamp or datetime.now(UTC).isoformat(timespec="seconds"),
        "type": MESSAGE_REPLY,
    }
    if reply_id is not None:
        fields["replyId"] = reply_id
    return WebhookEvent(MESSAGE_REPLY, json.dumps(fields, separators=(",", ":")).encode())


def opt_in_event(number: str, opt_in_type: str = "keyword") -> WebhookEvent:
    """A ``number-opt-in`` (an iMessage/RCS opt-in to a Sender Identity, not SMS consent)."""
    fields = {"number": number, "optInType": opt_in_type, "type": NUMBER_OPT_IN}
    return WebhookEvent(NUMBER_OPT_IN, json.dumps(fields, separators=(",", ":")).encode())


async def play_inbound(fake: FakeMTA, event: WebhookEvent) -> list[DeliveryResult]:
    """Deliver ``event`` to every registration of its type, as MTA would (signed with
    each one's secret, retried when it asked for retries); results are also recorded
    in ``fake.webhook_deliveries`` (message id 0: no outbound message)."""
    results = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for hook in fake.webhooks:
            if hook.event != event.event:
                continue
            retries = MAX_RETRIES if hook.options.get("retryOnError") else 0
            result = await deliver(
                client, hook.url, hook.secret, event, retries=retries, backoff=fake.webhook_backoff
            )
            fake.record_delivery(WebhookDelivery(hook.id, 0, result))
            results.append(result)
    return results
