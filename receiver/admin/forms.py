"""Reading operator input: urlencoded form bodies and the event filters of a query string.

Forms are parsed here rather than with ``request.form()``, which needs python-multipart
for a handful of short ``application/x-www-form-urlencoded`` fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request

from ..mta.events import EVENT_TYPES, UNKNOWN
from ..mta.statuses import STATUS_NAMES
from ..store import EVENT_STATES, MAX_ID
from ..store.operator import EventFilter

MAX_FORM_BYTES = 8192
STATES = EVENT_STATES
TYPES = (*EVENT_TYPES, UNKNOWN)


class FormTooLarge(Exception):
    """The form body is larger than any form of ours."""


async def form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded POST body (last value wins)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class Filters:
    """The filter form as typed (to show it back) and the `EventFilter` it means."""

    values: Mapping[str, str]
    query: EventFilter
    errors: tuple[str, ...]


def filters(params: Mapping[str, str], limit: int = 50) -> Filters:
    """Turn the query string of the events page into an `EventFilter`.

    Bad values are reported and ignored, never a 500: the operator sees the message next
    to the form. Times are UTC (``datetime-local`` inputs carry no zone).
    """
    values = {k: params.get(k, "").strip() for k in _FIELDS}
    errors: list[str] = []
    status = None
    if raw := values["status"]:
        status = _status(raw)
        if status is None:
            errors.append(f"unknown status {raw!r}")
    since, until = _time(values["since"], errors), _time(values["until"], errors)
    before = None
    if raw := values["before"]:
        before = _number(raw)
    query = EventFilter(
        type=values["type"] or None,
        state=values["state"] or None,
        status=status,
        number=values["number"] or None,
        message_id=values["message_id"] or None,
        account=values["account"] or None,
        since=since,
        until=until,
        before_id=before,
        limit=limit,
    )
    return Filters(values, query, tuple(errors))


_FIELDS = (
    "type",
    "state",
    "status",
    "number",
    "message_id",
    "account",
    "since",
    "until",
    "before",
)
_CODES = {name: code for code, name in STATUS_NAMES.items() if code is not None}


def _number(raw: str, limit: int = MAX_ID + 1) -> int | None:
    """A decimal count a database integer holds, or None ("²" is a digit, not decimal)."""
    if raw.isdecimal() and raw.isascii() and len(raw) <= 19 and int(raw) < limit:
        return int(raw)
    return None


def _status(raw: str) -> int | None:
    if (code := _number(raw, 2**31)) is not None:
        return code
    return _CODES.get(raw.lower())


def _time(raw: str, errors: list[str]) -> float | None:
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        errors.append(f"not a date and time: {raw!r}")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
