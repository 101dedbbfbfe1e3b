"""Tolerant readers of one payload field (receiver/mta/events.py): MTA documents some
payloads only partly (docs/mta.md), so a field may be absent, null, of another type or
absurdly long, and each reader answers None rather than fail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .phones import e164

_INT_LIMIT = 2**63  # what a database integer holds; larger "codes" are not codes
STATUS_LIMIT = 2**31
"""A delivery status code's bound: PostgreSQL's status column is a 4-byte integer."""


def integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    number: int | None = value if isinstance(value, int) else None
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and len(value) <= 32:
        try:
            number = int(value)
        except ValueError:
            return None
    return number if number is not None and -_INT_LIMIT < number < _INT_LIMIT else None


def identifier(value: object) -> str | None:
    """Ids arrive as numbers (documented) or strings (seen in the wild): keep one spelling."""
    number = integer(value)
    return str(number) if number is not None else text_value(value)


def text_value(value: object) -> str | None:
    return clean_text(value) if isinstance(value, str) and value else None


def clean_text(value: str) -> str:
    """``value`` as every database and log encoder takes it."""
    # JSON may carry lone surrogates ("\\ud800") that no database or log encoder accepts,
    # and NUL ("\\u0000"), which PostgreSQL's text refuses: both spelled out instead.
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def first_text(fields: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and value:
            return clean_text(value)
    return None


def first_phone(fields: Mapping[str, Any], keys: tuple[str, ...], country: str) -> str | None:
    # E.164 from the raw text: a control character is dropped with the other non-digits.
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and value:
            return clean_text(e164(value, country))
    return None


def tags_of(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {
        clean_text(str(k)): clean_text(v if isinstance(v, str) else str(v))
        for k, v in value.items()
        if v is not None
    }
