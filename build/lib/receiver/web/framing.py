"""The limits of HTTP framing the protocol (`receiver.web.server`) enforces, and its refusals.

Each refusal is a whole response, written by the protocol itself before (or instead of)
any app: the connection always closes after it.
"""

from __future__ import annotations

MAX_HEADER_BYTES = 65_536
"""Request line, header fields and trailer fields of one request, in bytes."""

MAX_HEADER_FIELDS = 100
"""Header and trailer fields of one request: Apache's ``LimitRequestFields`` default.
Node allows 2,000 (and drops the rest silently), nginx and Go bound bytes only; MTA and
reverse proxies send a dozen or two, and every field costs Python objects on top of its
bytes, so the tightest of the common servers' limits is the one taken."""

MAX_PIPELINED = 32
"""Requests of one connection queued behind the one being answered (MTA and reverse
proxies send one at a time)."""


def _response(status: bytes, outcome: str) -> bytes:
    body = b'{"error": "%s"}' % outcome.encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, len(body), body)
    )


# Every refusal of the protocol, by outcome (also the log line's ``outcome``).
REFUSALS = {
    "bad_request": _response(b"400 Bad Request", "bad_request"),  # malformed framing
    "too_many_pipelined": _response(b"400 Bad Request", "too_many_pipelined"),
    "request_timeout": _response(b"408 Request Timeout", "request_timeout"),
    "headers_too_large": _response(b"431 Request Header Fields Too Large", "headers_too_large"),
    "unsupported_transfer_coding": _response(b"501 Not Implemented", "unsupported_transfer_coding"),
}


def coding_refusal(values: list[bytes]) -> str | None:
    """The refusal for these ``Transfer-Encoding`` values, None for plain ``chunked``.

    RFC 9112 section 6.1: a server answers 501 to a transfer coding it does not know; we
    know only ``chunked`` (httptools would read ``gzip, chunked`` as plain chunked and
    hand the app the still-compressed bytes). ``chunked`` twice, or an empty item, is
    malformed: 400.
    """
    codings = [item.strip().lower() for value in values for item in value.split(b",")]
    if codings == [b"chunked"]:
        return None
    if any(coding not in (b"chunked", b"") for coding in codings):
        return "unsupported_transfer_coding"
    return "bad_request"
