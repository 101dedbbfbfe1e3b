"""Cancel handler runs that overrun their time, without a timer per run.

``asyncio.timeout`` arms and disarms a loop timer per call, which costs many times the
call itself and a noticeable share of the worker's time per event. Here a run only notes
its deadline, and one sweep per interval (a quarter of the limit, at most a second)
cancels the late ones, as the HTTP read deadline does (receiver/web/server.py).
"""

from __future__ import annotations

import asyncio


class Watchdog:
    """Deadlines of the runs in progress, keyed by the task running each."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.interval = min(1.0, seconds / 4)
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._armed: asyncio.AbstractEventLoop | None = None  # the loop the sweep runs on

    def start(self, task: asyncio.Task[object]) -> None:
        """``task`` begins a run: it is cancelled if still running after `seconds`."""
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + self.seconds
        if self._armed is not loop:
            self._armed = loop
            loop.call_later(self.interval, self._sweep, loop)

    def finish(self, task: asyncio.Task[object]) -> bool:
        """``task`` ended its run; True when the watchdog cancelled it (its cancellation
        request is withdrawn then: the caller decides what the overrun means)."""
        del self._deadlines[task]
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in self._deadlines.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            loop.call_later(self.interval, self._sweep, loop)
        else:
            self._armed = None
