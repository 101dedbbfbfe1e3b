"""Exponential backoff with equal jitter: the one formula for handler retries and MTA calls."""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def backoff(
    attempt: int,
    base: float,
    cap: float = math.inf,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry ``attempt`` (1-based): ``base`` doubling per attempt, capped at
    ``cap``, then a random point in its upper half (so retries of many clients spread out,
    yet none comes sooner than half the delay)."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay / 2 + jitter() * delay / 2
