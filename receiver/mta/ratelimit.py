"""Client-side rate limiting of ``POST /send``: MTA allows 25 per 15 s per account.

docs/mta.md ("Limits and errors"). A sliding log guarantees the limit over *every* window, not
only aligned ones; a small margin absorbs the network's jitter between our clock and
MTA's. A 429's ``Retry-After`` or an exhausted ``RateLimit-Remaining`` pauses everyone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import ConfigError

MARGIN_SECONDS = 0.25
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(s|m)?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` calls per ``seconds``."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``25/15s``, ``100/1m`` or ``25/15`` (seconds)."""
        match = _RATE.match(text)
        if not match or int(match[1]) < 1 or float(match[2]) <= 0:
            raise ConfigError(f"RECEIVER_MTA_SEND_RATE must look like 25/15s, got {text!r}")
        seconds = float(match[2]) * (60 if match[3] == "m" else 1)
        return cls(int(match[1]), seconds)


class Limiter(Protocol):
    """Admission to MTA's send endpoint, shared by every send of one account."""

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        ...

    def pause(self, seconds: float) -> None:
        """MTA said to wait (429, RateLimit-Remaining 0): nobody sends for ``seconds``."""
        ...


class SlidingWindowLimiter:
    """An in-process `Limiter` (one process per account, e.g. SQLite deployments)."""

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        margin: float = MARGIN_SECONDS,
    ) -> None:
        self.rate = rate
        self.window = rate.seconds + margin
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        waited = 0.0
        async with self._lock:
            while True:
                now = self.clock()
                self._expire(now)
                delay = self._paused_until - now
                if len(self._sent) >= self.rate.count:
                    delay = max(delay, self._sent[0] + self.window - now)
                if delay <= 0:
                    self._sent.append(now)
                    return waited
                await self.sleep(delay)
                waited += delay

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting; whether one was taken."""
        now = self.clock()
        self._expire(now)
        if now < self._paused_until or len(self._sent) >= self.rate.count:
            return False
        self._sent.append(now)
        return True

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
