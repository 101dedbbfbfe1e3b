"""MTA's API: the client, its rate limiter and its errors."""

from __future__ import annotations

from .client import DEFAULT_BASE_URL, MTAClient, SendResult
from .errors import MTAError, MTAOutcomeUnknown, MTARejected, MTAUnavailable, SendWithdrawn
from .ratelimit import Limiter, Rate, SlidingWindowLimiter

__all__ = [
    "DEFAULT_BASE_URL",
    "Limiter",
    "MTAClient",
    "MTAError",
    "MTAOutcomeUnknown",
    "MTARejected",
    "MTAUnavailable",
    "Rate",
    "SendResult",
    "SendWithdrawn",
    "SlidingWindowLimiter",
]
