"""Operator login: the password check, the session it leaves, and the login throttle.

Sessions are Starlette's signed cookies (itsdangerous), so nothing is stored server-side.
To make a password change log everybody out anyway, the session keeps a keyed
fingerprint of the password it was opened with and is valid only while it still matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict, deque
from collections.abc import Callable, MutableMapping
from typing import Any

from ..settings import Secret

SESSION_MAX_AGE = 8 * 3600
"""One working day from login; then log in again, however busy the session was."""


class LoginThrottle:
    """At most ``limit`` failed logins per client address within ``window`` seconds.

    Kept in memory, per process: with several replicas an attacker gets ``limit`` tries
    per replica per window, which is still far too few to guess a real password. At most
    ``max_clients`` addresses are remembered (the least recently failing are forgotten) so
    a flood of spoofed addresses cannot grow memory without bound.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        limit: int = 5,
        window: float = 300.0,
        max_clients: int = 10_000,
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return None
        return max(1.0, failures[0] + self.window - self.clock())

    def failed(self, client: str) -> None:
        """Count one failed attempt of ``client``."""
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget the failures of ``client``: it knows the password."""
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class Password:
    """The operator password and the fingerprint sessions carry."""

    def __init__(self, password: Secret, session_secret: str) -> None:
        self._digest = hashlib.sha256(password.reveal().encode()).digest()
        self.fingerprint = hmac.new(
            session_secret.encode(), b"admin-password:" + self._digest, hashlib.sha256
        ).hexdigest()[:32]

    def matches(self, attempt: str) -> bool:
        """Constant-time check; hashing first hides the password's length too."""
        return hmac.compare_digest(hashlib.sha256(attempt.encode()).digest(), self._digest)


def log_in(session: MutableMapping[str, Any], password: Password, now: float) -> None:
    """Start an operator session: a fresh session (new CSRF token) that names the
    password it was opened with."""
    session.clear()
    session["operator"] = password.fingerprint
    session["since"] = now


def logged_in(session: MutableMapping[str, Any], password: Password, now: float) -> bool:
    """Whether the session was opened with the current password, less than
    `SESSION_MAX_AGE` ago (the cookie's own age restarts whenever the session changes:
    only ``since`` bounds a session kept alive by use)."""
    fingerprint = session.get("operator")
    since = session.get("since")
    return (
        isinstance(fingerprint, str)
        and hmac.compare_digest(fingerprint, password.fingerprint)
        and isinstance(since, int | float)
        and 0 <= now - since < SESSION_MAX_AGE
    )
