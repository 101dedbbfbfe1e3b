"""Parsing an authentic body into a JSON object, without crashing on hostile input."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ..errors import PayloadError

# msgspec parses a webhook body several times faster than the stdlib and builds the
# same objects, big integers included. It refuses a few things the stdlib accepts (NaN,
# lone surrogates, numbers out of float range): every body it refuses goes through the
# stdlib, so what is accepted, and why the rest is quarantined, stays the stdlib's answer.
_decode = msgspec.json.Decoder().decode


def parse(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raise `PayloadError` with a short reason otherwise.

    Covers empty bodies, bytes that are not UTF-8, invalid JSON, deep nesting (the C
    decoders raise RecursionError around 1,000 levels) and JSON that is not an object.
    """
    try:
        value = _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        value = _parse_stdlib(body)
    if not isinstance(value, dict):
        raise PayloadError("not_an_object")
    return value


def _parse_stdlib(body: bytes) -> Any:
    if not body.strip():
        raise PayloadError("empty_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not_utf8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PayloadError("too_deep") from None
    except ValueError:
        raise PayloadError("invalid_json") from None
