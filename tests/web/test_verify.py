"""Signature verification: `sign` and `Verifier` on raw bytes, rotation, every refusal reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from receiver.errors import VerificationError
from receiver.settings import Secret
from receiver.web.verify import Verifier, sign

from ..conftest import OLD_SECRET, SECRET

BODY = b'{"messageId":912345,"status":4,"type":"delivery-status"}'


def verifier(*secrets: str) -> Verifier:
    """A verifier over ``secrets``, in order."""
    return Verifier(tuple(Secret(s) for s in secrets))


def reason_of(check: Verifier, body: bytes, signature: bytes | None) -> str:
    """The reason ``check`` refuses ``signature``; fails the test if it accepts it."""
    with pytest.raises(VerificationError) as refused:
        check.verify(body, signature)
    return refused.value.reason


def test_sign_is_lowercase_hex_hmac_sha256_of_the_raw_body() -> None:
    """`sign` produces MTA's X-Signature: lowercase hex HMAC-SHA256(secret, body)."""
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == expected
    assert sign(SECRET, BODY) == sign(SECRET, BODY).lower()


def test_correct_signature_returns_the_index_of_the_secret() -> None:
    """A body signed with the only secret verifies as index 0."""
    assert verifier(SECRET).verify(BODY, sign(SECRET, BODY).encode()) == 0


def test_rotation_second_secret_verifies_with_index_one() -> None:
    """During a rotation the second of two secrets verifies, reporting index 1."""
    check = verifier(SECRET, OLD_SECRET)
    assert check.verify(BODY, sign(OLD_SECRET, BODY).encode()) == 1
    assert check.verify(BODY, sign(SECRET, BODY).encode()) == 0


def test_missing_signature_is_refused_as_missing() -> None:
    """No X-Signature header at all is refused with reason missing_signature."""
    assert reason_of(verifier(SECRET), BODY, None) == "missing_signature"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(b"", id="empty"),
        pytest.param(sign(SECRET, BODY)[:-1].encode(), id="too-short"),
        pytest.param(sign(SECRET, BODY).encode() + b"0", id="too-long"),
        pytest.param(b"z" * 64, id="non-hex"),
        pytest.param(sign(SECRET, BODY).upper().encode(), id="uppercase-hex"),
        pytest.param(b" " + sign(SECRET, BODY).encode(), id="leading-space"),
        pytest.param(sign(SECRET, BODY)[:-1].encode() + b" ", id="inner-space-right-length"),
        pytest.param(b"sha256=" + sign(SECRET, BODY).encode(), id="prefixed"),
    ],
)
def test_malformed_signatures_are_refused_as_malformed(signature: bytes) -> None:
    """Wrong length, non-hex, uppercase or whitespace is malformed, even with the right digest."""
    assert reason_of(verifier(SECRET), BODY, signature) == "malformed_signature"


def test_right_length_wrong_digest_is_a_bad_signature() -> None:
    """64 lowercase hex digits that are not the HMAC are refused as bad_signature."""
    assert reason_of(verifier(SECRET, OLD_SECRET), BODY, b"0" * 64) == "bad_signature"


def test_signature_over_another_body_is_a_bad_signature() -> None:
    """A genuine signature of a different body does not verify this one."""
    other = sign(SECRET, BODY + b" ").encode()
    assert reason_of(verifier(SECRET), BODY, other) == "bad_signature"


def test_signature_with_an_unknown_secret_is_a_bad_signature() -> None:
    """A body signed with a secret that is not configured is refused."""
    assert reason_of(verifier(SECRET), BODY, sign(OLD_SECRET, BODY).encode()) == "bad_signature"


def test_non_ascii_secret_is_keyed_by_its_utf8_bytes() -> None:
    """A non-ASCII secret works, keyed by its UTF-8 encoding (not Latin-1)."""
    secret = "clé-🔑-schlüssel"
    by_utf8 = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    assert sign(secret, BODY) == by_utf8
    assert verifier(SECRET, secret).verify(BODY, by_utf8.encode()) == 1
    by_latin1 = hmac.new("clé".encode("latin-1"), BODY, hashlib.sha256).hexdigest()
    assert reason_of(verifier("clé"), BODY, by_latin1.encode()) == "bad_signature"


def test_verifier_refuses_to_exist_without_secrets() -> None:
    """A verifier with no secret cannot be built: fail closed."""
    with pytest.raises(ValueError, match="secret"):
        Verifier(())
