"""CSRF protection: one random token per session, echoed by every form.

A cross-site page can make the browser post to us with our cookie (SameSite=Lax stops
most of that, not all: older browsers, same-site subdomains), but it cannot read the
token out of our pages, so a POST without the session's token is refused.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

FIELD = "csrf"
_KEY = "csrf"


def token(session: MutableMapping[str, Any]) -> str:
    """The session's token, created on first use."""
    value = session.get(_KEY)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session[_KEY] = value
    return value


def valid(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    """Whether ``submitted`` is this session's token (constant-time)."""
    expected = session.get(_KEY)
    if not isinstance(expected, str) or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
