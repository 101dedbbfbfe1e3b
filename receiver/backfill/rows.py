"""Rows of MTA's ``GET /deliveries``, read tolerantly, and their status words as codes.

docs/mta.md ("Reading back"): the list gives the latest status per message as a string
(sent, delivered, undelivered, undeliverable, unknown, rejected); its row fields are not
documented (third-party code reads messageId, externalId, status, date, carrier, to). So
every field is looked for under the names seen in the wild, a numeric status is taken as
MTA's code, and a word becomes a code only where one code alone fits it (docs/backfill.md,
"Status words"): ``undeliverable`` may be an invalid number, an opt-out or a landline (10,
11, 12), ``rejected`` either rejection (8, 13), ``unknown`` anything; those stay without a
code, so no handler can take them for a failure worth a resend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..mta import statuses

__all__ = ["AMBIGUOUS_WORDS", "WORD_CODES", "DeliveryRow", "read_row"]

WORD_CODES: Mapping[str, int] = {
    "delivered": statuses.DELIVERED,
    "sent": statuses.SENT,
    "undelivered": statuses.UNDELIVERED,
}
"""The words that name exactly one of MTA's status codes."""
AMBIGUOUS_WORDS = frozenset({"undeliverable", "unknown", "rejected"})
"""MTA's other words: stored as they are, with no code."""

_MESSAGE_ID_KEYS = ("messageId", "id")
_PHONE_KEYS = ("to", "number", "phone", "destinationNumber")
_STATUS_KEYS = ("status", "statusCode", "deliveryStatus")
_DATE_KEYS = ("date", "updatedAt", "statusDate", "deliveredAt", "sentAt", "createdAt")
_EPOCH_MS = 10**11  # a number past this is milliseconds (10**11 s is the year 5138)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One readable row: a message, its recipient, and its status as a code or a word."""

    message_id: str
    phone: str | None
    status: int | None
    word: str | None
    at: float | None
    external_id: str | None
    raw: Mapping[str, Any] = field(repr=False)


def read_row(row: object) -> DeliveryRow | None:
    """The row's message and status, or None when it names no message or no status."""
    if not isinstance(row, Mapping):
        return None
    message_id = _first(row, _MESSAGE_ID_KEYS)
    raw_status = next((row[k] for k in _STATUS_KEYS if _scalar(row.get(k))), None)
    status: int | None = None
    word: str | None = None
    if isinstance(raw_status, int) and not isinstance(raw_status, bool):
        status = raw_status
    elif isinstance(raw_status, str) and raw_status.strip().isdigit():
        status = int(raw_status.strip())
    elif isinstance(raw_status, str) and raw_status.strip():
        word = raw_status.strip().lower()
        status = WORD_CODES.get(word)
    if message_id is None or (status is None and word is None):
        return None
    if status is not None and not 0 <= status < 2**31:
        return None  # not a code
    return DeliveryRow(
        message_id=message_id,
        phone=_first(row, _PHONE_KEYS),
        status=status,
        word=word,
        at=_when(row),
        external_id=_first(row, ("externalId",)),
        raw=row,
    )


def _scalar(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != ""


def _first(row: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = row.get(key)
        if _scalar(value) and str(value).strip():
            return str(value).strip()
    return None


def _when(row: Mapping[str, Any]) -> float | None:
    """The row's date as a timestamp: ISO 8601 text or epoch seconds/milliseconds."""
    for key in _DATE_KEYS:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value) / (1000 if value > _EPOCH_MS else 1)
        if isinstance(value, str) and value.strip():
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None
