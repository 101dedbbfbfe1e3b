"""A sliding-window rate limit like the one MTA puts on ``POST /send``.

docs/mta.md ("Limits and errors"): ``POST /send`` allows 25 requests per 15 s per account;
answers carry ``RateLimit-Limit/Remaining/Reset`` (and ``X-RateLimit-*``), Reset in
milliseconds, and a 429 carries ``Retry-After`` in seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["Decision", "SlidingWindow"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against the window."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    @property
    def retry_after(self) -> int:
        """Whole seconds until a slot frees up (at least 1), for ``Retry-After``."""
        return max(1, math.ceil(self.reset_ms / 1000))

    def headers(self) -> dict[str, str]:
        """The rate-limit headers MTA adds to every answer."""
        values = {
            "Limit": str(self.limit),
            "Remaining": str(self.remaining),
            "Reset": str(self.reset_ms),
        }
        headers = {f"RateLimit-{k}": v for k, v in values.items()}
        headers.update({f"X-RateLimit-{k}": v for k, v in values.items()})
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class SlidingWindow:
    """Counts accepted requests per key over the last ``window`` seconds.

    Rejected requests do not take a slot. Not locked: the caller serialises access.
    """

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float, limit: int, window: float) -> Decision:
        """Account one request for ``key`` at ``now``; allowed while under ``limit``."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        reset = (hits[0] + window - now) if hits else window
        return Decision(allowed, limit, max(0, limit - len(hits)), math.ceil(reset * 1000))

    def clear(self) -> None:
        """Forget every request."""
        self._hits.clear()
