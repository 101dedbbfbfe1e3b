"""Distinct, signed delivery-status bodies for the ingest benchmark.

Every body carries a unique ``messageId``/``externalId`` so the receiver's
deduplication never folds two benchmark requests into one row, and is padded to
a fixed size so every request costs the same to parse and store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BODY_SIZE = 400
"""Target size of one JSON body, in bytes."""

WEBHOOK_PATH = "/webhooks/mta?event=delivery-status"
"""Path and query string both servers are driven on."""

_PREFIX = (
    '{{"destinationNumber":"+1555{phone:07d}","messageId":{mid},'
    '"externalId":"bench-{mid}","status":4,'
    '"tags":{{"campaign":"bench","run":"{run}","pad":"'
)
_SUFFIX = '"},"senderName":"Acme","type":"delivery-status"}'


@dataclass(frozen=True)
class SignedBody:
    """One request body and its ``X-Signature`` header value."""

    body: bytes
    signature: str


def new_secret() -> str:
    """Return a fresh 128-hex-character webhook secret."""
    return secrets.token_hex(64)


def sign(secret: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``body`` keyed by ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_body(message_id: int, run_id: str) -> bytes:
    """Return a delivery-status body for ``message_id``, padded to :data:`BODY_SIZE`."""
    head = _PREFIX.format(phone=message_id % 10_000_000, mid=message_id, run=run_id)
    pad = max(0, BODY_SIZE - len(head) - len(_SUFFIX))
    return (head + "x" * pad + _SUFFIX).encode()


def signed_bodies(secret: str, run_id: str, first_id: int, count: int) -> Iterator[SignedBody]:
    """Yield ``count`` signed bodies with message ids ``first_id, first_id + 1, ...``."""
    key = secret.encode()
    for message_id in range(first_id, first_id + count):
        body = make_body(message_id, run_id)
        yield SignedBody(body, hmac.new(key, body, hashlib.sha256).hexdigest())


def write_wrk_file(path: Path, bodies: Iterator[SignedBody]) -> int:
    """Write ``signature<TAB>body`` lines for ``bench/wrk_signed.lua``; return the count."""
    count = 0
    with path.open("wb") as out:
        for item in bodies:
            out.write(item.signature.encode() + b"\t" + item.body + b"\n")
            count += 1
    return count


def raw_request(item: SignedBody, host: str) -> bytes:
    """Return the full keep-alive HTTP/1.1 request carrying ``item``."""
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Signature: {item.signature}\r\n"
        f"Content-Length: {len(item.body)}\r\n"
        "\r\n"
    )
    return head.encode() + item.body
