"""MTA's side: what it sends us (payload, events, statuses) and how we call it (client,
rate limit, errors).

The client pulls in httpx; the vocabulary modules do not. So that ``import
receiver.mta.events`` (and with it the dispatch core) stays free of httpx, the client's
names are imported here only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import MTAClient, SendResult
    from .errors import MTAError, MTAOutcomeUnknown, MTARejected, MTAUnavailable, SendWithdrawn
    from .ratelimit import Limiter, Rate, SlidingWindowLimiter

DEFAULT_BASE_URL = "https://api.mobile-text-alerts.com/v3"
"""MTA's API v3 (https://developers.mobile-text-alerts.com); tests point the receiver at
the fake MTA instead (``RECEIVER_MTA_BASE_URL``)."""

_WHERE = {
    "MTAClient": "client",
    "SendResult": "client",
    "MTAError": "errors",
    "MTAOutcomeUnknown": "errors",
    "MTARejected": "errors",
    "MTAUnavailable": "errors",
    "SendWithdrawn": "errors",
    "Limiter": "ratelimit",
    "Rate": "ratelimit",
    "SlidingWindowLimiter": "ratelimit",
}

__all__ = [  # a literal, so type checkers and linters see the lazy names as exported
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
assert sorted(__all__) == sorted([*_WHERE, "DEFAULT_BASE_URL"])


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
