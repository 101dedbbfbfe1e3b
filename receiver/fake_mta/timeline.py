"""Play a message's webhook timeline back to a receiver, signed like MTA signs it.

docs/mta.md ("Webhooks MTA sends to us"): MTA POSTs a JSON body with header ``X-Signature`` =
lowercase hex HMAC-SHA256(secret, raw body bytes); only HTTP 200 counts as success, and a
registration with ``retryOnError`` is retried with exponential backoff, at most twice.
A message's whole status history is sent: several ``delivery-status`` events share one
``messageId``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..mta.events import DELIVERY_STATUS, MESSAGE_SEND
from ..mta.statuses import DeliveryStatus

__all__ = [
    "DELIVERY_STATUS",
    "MESSAGE_SEND",
    "DeliveryResult",
    "Status",
    "TimelineMessage",
    "WebhookEvent",
    "deliver",
    "event_url",
    "mta_fallback",
    "play_timeline",
    "sign",
    "timeline_events",
]

MAX_RETRIES = 2  # docs/mta.md: with retryOnError, MTA retries at most twice


Status = DeliveryStatus
"""MTA delivery-status codes (docs/mta.md "delivery-status"; the list may grow)."""


@dataclass(frozen=True, slots=True)
class TimelineMessage:
    """The outbound message whose events are played back."""

    message_id: int
    destination_number: str
    text: str = ""
    external_id: str | None = None
    tags: Mapping[str, str] | None = None
    sender_name: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One webhook: its event name and the exact body bytes that get signed."""

    event: str
    body: bytes

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one webhook: the last HTTP status (or error) and attempts made."""

    event: str
    url: str
    body: bytes
    status_code: int | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        """True when the receiver answered 200, the only success MTA knows (docs/mta.md)."""
        return self.status_code == 200


def mta_fallback(failure: int = Status.DELIVERY_FAILED) -> tuple[int, ...]:
    """Steps of MTA's own SMS fallback: SENT, a failure, then DELIVERED for the same message.

    docs/mta.md ("iMessage route and SMS"): MTA falls back by itself and no
    webhook field says so; the receiver only sees a later DELIVERED.
    """
    return (Status.SENT, failure, Status.DELIVERED)


def sign(secret: str, body: bytes) -> str:
    """``X-Signature`` for ``body``: lowercase hex HMAC-SHA256 keyed by the UTF-8 secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def event_url(url: str, event: str) -> str:
    """``url`` with ``?event=<event>`` added, unless it already names an event."""
    parsed = httpx.URL(url)
    if "event" in parsed.params:
        return url
    return str(parsed.copy_add_param("event", event))


def _dump(fields: Mapping[str, Any]) -> bytes:
    # Optional fields may be absent or null (docs/mta.md): absent here, except externalId.
    body = {k: v for k, v in fields.items() if v is not None or k == "externalId"}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def timeline_events(
    message: TimelineMessage, steps: Iterable[int], *, include_send: bool = True
) -> list[WebhookEvent]:
    """The webhooks of a timeline, in order: ``message-send``, then one per status step."""
    common = {
        "messageId": message.message_id,
        "externalId": message.external_id,
        "destinationNumber": message.destination_number,
        "tags": dict(message.tags) if message.tags is not None else None,
        "senderName": message.sender_name,
    }
    events = []
    if include_send:
        # message-send fields are "unknown" in docs/mta.md; these are the likely ones it lists.
        fields = {**common, "message": message.text, "type": MESSAGE_SEND}
        events.append(WebhookEvent(MESSAGE_SEND, _dump(fields)))
    for status in steps:
        # The literal value of `type` is unknown (docs/mta.md); the event name is our guess.
        fields = {**common, "status": int(status), "type": DELIVERY_STATUS}
        events.append(WebhookEvent(DELIVERY_STATUS, _dump(fields)))
    return events


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str | None,
    event: WebhookEvent,
    *,
    retries: int = 0,
    backoff: float = 1.0,
) -> DeliveryResult:
    """POST one signed webhook, retrying non-200 answers ``retries`` times (capped at 2)."""
    target = event_url(url, event.event)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Signature"] = sign(secret, event.body)
    status: int | None = None
    error: str | None = None
    attempts = 0
    for attempt in range(min(retries, MAX_RETRIES) + 1):
        if attempt:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
        attempts += 1
        try:
            response = await client.post(target, content=event.body, headers=headers)
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            status, error = response.status_code, None
            if status == 200:
                break
    return DeliveryResult(event.event, target, event.body, status, error, attempts)


async def play_timeline(
    receiver_url: str,
    secret: str | None,
    message: TimelineMessage,
    steps: Iterable[int] = (Status.SENT, Status.DELIVERED),
    *,
    include_send: bool = True,
    client: httpx.AsyncClient | None = None,
    retries: int = 0,
    backoff: float = 1.0,
) -> list[DeliveryResult]:
    """Send ``message``'s timeline to ``receiver_url`` one webhook after the other.

    Each URL gets ``?event=<name>``; a failed delivery does not stop the timeline.
    """
    events = timeline_events(message, steps, include_send=include_send)
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        return [
            await deliver(client, receiver_url, secret, e, retries=retries, backoff=backoff)
            for e in events
        ]
