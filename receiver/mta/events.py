"""Normalized events: MTA's four webhook payloads read tolerantly into one frozen value.

MTA documents ``delivery-status`` fully and the other payloads only partly (docs/mta.md,
"Webhooks MTA sends to us"), so every field here is optional, may be absent or null, may sit under a
wrapping ``data`` object, and the raw payload is always kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .fields import (
    STATUS_LIMIT,
    first_phone,
    first_text,
    identifier,
    integer,
    tags_of,
    text_value,
)
from .phones import DEFAULT_COUNTRY_CODE
from .statuses import STATUS_NAMES

MESSAGE_REPLY = "message-reply"
DELIVERY_STATUS = "delivery-status"
MESSAGE_SEND = "message-send"
NUMBER_OPT_IN = "number-opt-in"
UNKNOWN = "unknown"
EVENT_TYPES = (MESSAGE_REPLY, DELIVERY_STATUS, MESSAGE_SEND, NUMBER_OPT_IN)
BACKFILL_MARK = "_receiver"  # our own key in a status read back from MTA (receiver/backfill/)
DEFAULT_ACCOUNT = "default"
"""The account the environment configures (``RECEIVER_WEBHOOK_SECRETS``, ``/webhooks/mta``);
others come from ``RECEIVER_ACCOUNTS_FILE`` (docs/accounts.md)."""

# The literal value of the payload's ``type`` field is undocumented (docs/mta.md): accept the
# spellings integrations are known to use, all mapped to our names.
_TYPE_ALIASES = {
    alias: name
    for name in EVENT_TYPES
    for alias in (name, name.replace("-", "_"), name.replace("-", ""), name.replace("-", " "))
}

# The subscriber's number, per event type, first match wins (docs/mta.md, "message-reply"):
# a delivery status goes *to* the subscriber (destinationNumber); a reply comes *from*
# them (fromNumber, or originationNumber in the AWS spelling some integrations use), and
# its toNumber/destinationNumber is our own number, never the subscriber's. number-opt-in
# names no phone field: it comes from the subscriber, like a reply.
_GENERIC_PHONE_KEYS = ("number", "phoneNumber", "subscriber", "phone")
_REPLY_PHONE_KEYS = ("fromNumber", "originationNumber", *_GENERIC_PHONE_KEYS)
_RECIPIENT_PHONE_KEYS = ("destinationNumber", *_GENERIC_PHONE_KEYS)
_PHONE_KEYS = {
    DELIVERY_STATUS: _RECIPIENT_PHONE_KEYS,
    MESSAGE_SEND: _RECIPIENT_PHONE_KEYS,
    MESSAGE_REPLY: _REPLY_PHONE_KEYS,
    NUMBER_OPT_IN: _REPLY_PHONE_KEYS,
}
_OUR_NUMBER_KEYS = ("toNumber", "destinationNumber")
_TEXT_KEYS = ("message", "text", "messageText", "body", "content")


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook as the handlers see it.

    ``name`` refines ``type``: for delivery status it is ``delivery-status.<status>``
    (``delivery-status.delivered``, ``delivery-status.unknown`` for codes MTA added after
    us); for other types it equals ``type``. ``raw`` is the payload exactly as parsed."""

    type: str
    name: str
    received_at: float
    raw: Mapping[str, Any] = field(repr=False)
    status: int | None = None
    status_name: str | None = None
    message_id: str | None = None
    external_id: str | None = None
    phone: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    sender_name: str | None = None
    reply_id: str | None = None
    text: str | None = field(default=None, repr=False)
    id: int | None = None
    reply_digest: str | None = field(default=None, repr=False)
    account: str = DEFAULT_ACCOUNT
    """The MTA account whose webhook this is: message ids are unique only within one."""

    @property
    def source(self) -> str:
        """``backfill`` for a status read back from MTA after its webhook was lost."""
        return "backfill" if isinstance(self.raw.get(BACKFILL_MARK), Mapping) else "webhook"


class Identity(NamedTuple):
    """What intake needs of a payload before answering: who, which message, which status;
    `normalize` adds the rest (tags, text) for handlers, work intake skips. A named tuple:
    built for every webhook, it is cheaper to make than a frozen dataclass."""

    type: str
    name: str
    status: int | None
    status_name: str | None
    message_id: str | None
    external_id: str | None
    phone: str | None
    sender_name: str | None
    reply_id: str | None
    reply_digest: str | None = None
    """A reply without a ``replyId``: hash of (subscriber, our number, text, timestamp)."""


def message_send_key(message_id: str) -> str:
    """The dedup key of a message's ``message-send`` webhook (one per messageId)."""
    return f"ms:{message_id}"


def account_key(account: str, key: str) -> str:
    """A dedup key within ``account``: MTA's message ids are per account, so the same
    ``messageId`` in two accounts is two messages. The default account's keys carry no
    prefix (they are the keys stored before accounts existed); account names never
    contain ``:`` or ``/``, so no prefixed key equals an unprefixed one."""
    return key if account == DEFAULT_ACCOUNT else f"{account}/{key}"


def dedup_key(event: Identity | Event, body: bytes) -> str:
    """Identity of an event: MTA resends whole histories, retries and duplicate registrations.

    delivery-status by (messageId, status, recipient); message-send by messageId;
    message-reply by replyId, else by (subscriber, our number, text, timestamp); anything
    else by a hash of the exact body."""
    if event.type == DELIVERY_STATUS and event.message_id and event.status is not None:
        # One POST /send to several subscribers has one messageId (docs/mta.md, "Sending"):
        # the recipient is part of a status's identity, or B's DELIVERED would be
        # swallowed as a duplicate of A's.
        recipient = f":{event.phone}" if event.phone else ""
        return f"ds:{event.message_id}:{event.status}{recipient}"
    if event.type == MESSAGE_SEND and event.message_id:
        return message_send_key(event.message_id)
    if event.type == MESSAGE_REPLY and event.reply_id:
        return f"mr:{event.reply_id}"
    if event.type == MESSAGE_REPLY and event.reply_digest:
        return f"mr:h:{event.reply_digest}"
    return f"h:{event.type}:{hashlib.sha256(body).hexdigest()}"


def identify(
    payload: Mapping[str, Any],
    hinted_type: str | None = None,
    country: str = DEFAULT_COUNTRY_CODE,
) -> Identity:
    """The identifying fields of a parsed JSON object; never raises on odd fields.
    ``country``: what a national phone number is taken to be in (receiver/mta/phones.py)."""
    return _identify(_fields(payload), hinted_type, country)


def normalize(
    payload: Mapping[str, Any],
    received_at: float,
    hinted_type: str | None = None,
    event_id: int | None = None,
    country: str = DEFAULT_COUNTRY_CODE,
    account: str = DEFAULT_ACCOUNT,
) -> Event:
    """Read a parsed JSON object into an `Event`; never raises on odd or missing fields."""
    fields = _fields(payload)
    ident = _identify(fields, hinted_type, country)
    return Event(
        type=ident.type,
        name=ident.name,
        received_at=received_at,
        raw=payload,
        status=ident.status,
        status_name=ident.status_name,
        message_id=ident.message_id,
        external_id=ident.external_id,
        phone=ident.phone,
        tags=tags_of(fields.get("tags")),
        sender_name=ident.sender_name,
        reply_id=ident.reply_id,
        text=first_text(fields, _TEXT_KEYS),
        id=event_id,
        reply_digest=ident.reply_digest,
        account=account,
    )


def _fields(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = payload.get("data")
    return {**payload, **inner} if isinstance(inner, Mapping) else payload


def _identify(fields: Mapping[str, Any], hinted_type: str | None, country: str) -> Identity:
    kind = (
        event_type(hinted_type)
        or event_type(fields.get("type"))
        or event_type(fields.get("event"))
        or _infer_type(fields)
    )
    # Only a delivery-status's `status` is one of MTA's status codes (what other events
    # carry is unknown): it alone moves the message's state.
    status = integer(fields.get("status")) if kind == DELIVERY_STATUS else None
    if status is not None and not -STATUS_LIMIT <= status < STATUS_LIMIT:
        status = None  # not a code; and PostgreSQL's status column is a 4-byte integer
    status_name = None
    name = kind
    if kind == DELIVERY_STATUS:
        status_name = STATUS_NAMES.get(status, UNKNOWN) if status is not None else UNKNOWN
        name = f"{kind}.{status_name}"
    phone = first_phone(fields, _PHONE_KEYS.get(kind, _RECIPIENT_PHONE_KEYS), country)
    reply_id = identifier(fields.get("replyId"))
    digest = None
    when = fields.get("timestamp")  # without it two "YES" replies would be one: body hash
    if kind == MESSAGE_REPLY and reply_id is None and phone is not None and when:
        parts = (
            phone,
            first_phone(fields, _OUR_NUMBER_KEYS, country) or "",
            first_text(fields, _TEXT_KEYS) or "",
            str(when),
        )
        digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "backslashreplace")).hexdigest()
    return Identity(
        type=kind,
        name=name,
        status=status,
        status_name=status_name,
        message_id=identifier(fields.get("messageId")),
        external_id=text_value(fields.get("externalId")),
        phone=phone,
        sender_name=text_value(fields.get("senderName")),
        reply_id=reply_id,
        reply_digest=digest,
    )


def event_type(value: object) -> str | None:
    """Our name for an MTA event type spelling, or None when it is not one we know."""
    if not isinstance(value, str):
        return None
    known = _TYPE_ALIASES.get(value)
    return known or _TYPE_ALIASES.get(value.strip().lower().replace("_", "-"))


def _infer_type(fields: Mapping[str, Any]) -> str:
    # Used only when neither the URL nor the body names the type. Reply fields first: a
    # reply may echo a messageId and carry a field named status; a delivery status never
    # has a replyId or a fromNumber.
    if "replyId" in fields or "fromNumber" in fields:
        return MESSAGE_REPLY
    if "status" in fields and "messageId" in fields:
        return DELIVERY_STATUS
    if "optInType" in fields:
        return NUMBER_OPT_IN
    return UNKNOWN
