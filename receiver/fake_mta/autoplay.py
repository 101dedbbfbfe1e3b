"""Play timelines to the webhooks registered with the fake, as MTA would after a send."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from .records import SendRecord, WebhookDelivery
from .state import FakeMTA
from .timeline import MAX_RETRIES, TimelineMessage, deliver, timeline_events

__all__ = ["play_to_registrations"]


def _messages(record: SendRecord) -> list[TimelineMessage]:
    body = record.body
    tags = body.get("tags")
    external_id = body.get("externalId")
    sender_name = body.get("senderName")
    return [
        TimelineMessage(
            message_id=record.message_id,
            destination_number=str(number),
            text=str(body.get("message", "")),
            external_id=str(external_id) if external_id is not None else None,
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else None,
            sender_name=str(sender_name) if sender_name is not None else None,
        )
        for number in body.get("subscribers", [])
    ]


async def play_to_registrations(fake: FakeMTA, record: SendRecord, steps: Sequence[int]) -> None:
    """Send each recipient's timeline, event by event, to every matching registration.

    docs/mta.md: every registration for an event gets it, duplicates included, signed with
    that registration's secret; ``retryOnError`` means up to 2 retries with backoff.
    Results land in ``fake.webhook_deliveries``.
    """
    async with httpx.AsyncClient(timeout=10.0) as client:
        for message in _messages(record):
            for event in timeline_events(message, steps):
                if event.event == "delivery-status":  # what /delivery-report then shows
                    fake.sent.status(
                        record.message_id, message.destination_number, event.json()["status"]
                    )
                if fake.webhooks_down:  # an outage: MTA gave up on these (docs/mta.md)
                    continue
                for hook in fake.webhooks:
                    # Only the sending account's registrations hear of its messages.
                    if hook.event != event.event or hook.owner != record.api_key:
                        continue
                    retries = MAX_RETRIES if hook.options.get("retryOnError") else 0
                    result = await deliver(
                        client,
                        hook.url,
                        hook.secret,
                        event,
                        retries=retries,
                        backoff=fake.webhook_backoff,
                    )
                    fake.record_delivery(WebhookDelivery(hook.id, record.message_id, result))
