"""MTA delivery status codes and the forward-only order of a message's state.

Codes from MTA's "Check Delivery Status" page (docs/mta.md, "delivery-status"). The list
may grow past 13: an unknown code is recorded with the name ``unknown`` and never rejected.
"""

from __future__ import annotations

from enum import IntEnum


class DeliveryStatus(IntEnum):
    """MTA's delivery status codes (an event may carry a newer code than these)."""

    QUEUED = 1
    SENDING = 2
    SENT = 3
    DELIVERED = 4
    SENDING_FAILED = 5
    DELIVERY_FAILED = 6
    DELIVERY_UNCONFIRMED = 7
    DELIVERY_REJECTED = 8
    UNDELIVERED = 9
    INVALID_NUMBER = 10
    STOPPED_NUMBER = 11
    LANDLINE = 12
    SEND_REJECTED = 13


QUEUED = DeliveryStatus.QUEUED
SENDING = DeliveryStatus.SENDING
SENT = DeliveryStatus.SENT
DELIVERED = DeliveryStatus.DELIVERED
SENDING_FAILED = DeliveryStatus.SENDING_FAILED
DELIVERY_FAILED = DeliveryStatus.DELIVERY_FAILED
DELIVERY_UNCONFIRMED = DeliveryStatus.DELIVERY_UNCONFIRMED
DELIVERY_REJECTED = DeliveryStatus.DELIVERY_REJECTED
UNDELIVERED = DeliveryStatus.UNDELIVERED
INVALID_NUMBER = DeliveryStatus.INVALID_NUMBER
STOPPED_NUMBER = DeliveryStatus.STOPPED_NUMBER
LANDLINE = DeliveryStatus.LANDLINE
SEND_REJECTED = DeliveryStatus.SEND_REJECTED

STATUS_NAMES: dict[int | None, str] = {
    status: status.name.lower().replace("_", "-") for status in DeliveryStatus
}
"""Our event names' last part: ``delivery-status.sending-failed`` for 5, and so on."""

FAILURES = frozenset(
    {
        SENDING_FAILED,
        DELIVERY_FAILED,
        DELIVERY_REJECTED,
        UNDELIVERED,
        INVALID_NUMBER,
        STOPPED_NUMBER,
        LANDLINE,
        SEND_REJECTED,
    }
)
NEVER_RESEND = frozenset({INVALID_NUMBER, STOPPED_NUMBER, LANDLINE})
"""Never resent as SMS, whatever the configuration says: the number is invalid (10),
opted out (11) or a landline (12) -- SMS would fail or be unlawful too."""


def rank(status: int | None) -> int:
    """Where a status stands in a message's life; the state only ever moves up.

    Progress codes rank by their order (QUEUED < SENDING < SENT < UNCONFIRMED). Failures
    are terminal: the first one sticks. DELIVERED outranks a failure because MTA's own SMS
    fallback can deliver a message whose iMessage failed (docs/mta.md, "iMessage route and
    SMS"); nothing outranks DELIVERED, so a late SENT or failure never regresses it.
    Unknown codes rank
    lowest: they are recorded on the event but only name the state of a message we know
    nothing else about.
    """
    if status == DELIVERED:
        return 100
    if status in FAILURES:
        return 90
    if status in (QUEUED, SENDING, SENT):
        return status
    if status == DELIVERY_UNCONFIRMED:
        return 5
    return 0
