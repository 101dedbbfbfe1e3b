"""Signature verification of MTA webhooks, on the raw bytes, before any parsing.

MTA ("Webhook Signature Verification"): ``X-Signature`` is the lowercase hex
HMAC-SHA256 of the raw request body keyed with the registration's secret. There is no
timestamp and no nonce, so a captured request can be replayed: replay safety comes from
deduplication in the store, not from here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ..errors import VerificationError
from ..settings import Secret

_HEX = frozenset(b"0123456789abcdef")
_SIGNATURE_LENGTH = 64  # hex digits of a SHA-256 digest


def sign(secret: str, body: bytes) -> str:
    """The ``X-Signature`` value MTA sends for ``body`` (also used by tests and tools)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Verifier:
    """Checks a body against every active secret, so rotations never reject a webhook."""

    __slots__ = ("_macs",)

    def __init__(self, secrets: Sequence[Secret]) -> None:
        if not secrets:
            raise ValueError("at least one secret is required")
        # One keyed HMAC per secret, copied per body: faster than hmac.digest(), which
        # also drops the GIL on every call and then has to win it back from the store's
        # commit thread (figures in bench/README.md).
        self._macs = tuple(hmac.new(s.reveal().encode(), digestmod=hashlib.sha256) for s in secrets)

    def verify(self, body: bytes, signature: bytes | None) -> int:
        """Return the index of the secret that signed ``body``; raise `VerificationError`.

        ``signature`` is the raw header value; MTA sends lowercase hex and nothing else is
        accepted. Every secret is tried (no early exit
        that would tell an attacker which position matched), each in constant time.
        """
        if signature is None:
            raise VerificationError("missing_signature")
        if len(signature) != _SIGNATURE_LENGTH or not _HEX.issuperset(signature):
            raise VerificationError("malformed_signature")
        claimed = bytes.fromhex(signature.decode("ascii"))
        matched = -1
        for index, keyed in enumerate(self._macs):
            mac = keyed.copy()
            mac.update(body)
            expected = mac.digest()
            if hmac.compare_digest(expected, claimed) and matched < 0:
                matched = index
        if matched < 0:
            raise VerificationError("bad_signature")
        return matched
