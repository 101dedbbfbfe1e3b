"""Parsing an authentic body into a JSON object, without crashing on hostile input."""

from __future__ import annotations

import json
from typing import Any

from .errors import PayloadError


def parse(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raise `PayloadError` with a short reason otherwise.

    Covers empty bodies, bytes that are not UTF-8, invalid JSON, deep nesting (the C
    decoder raises RecursionError around 1,000 levels) and JSON that is not an object.
    """
    if not body.strip():
        raise PayloadError("empty_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not_utf8") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise PayloadError("too_deep") from None
    except ValueError:
        raise PayloadError("invalid_json") from None
    if not isinstance(value, dict):
        raise PayloadError("not_an_object")
    return value
