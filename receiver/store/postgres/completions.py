"""Completions recorded in batches: one statement per event-loop iteration.

The worker's handlers that finish during the same loop iteration hand their completions
over together at its end (``loop.call_soon``), and one statement records them all: one
round trip, whatever their number. Each submitter resumes only once its completion is
recorded (or the batch failed: then every one of them sees the error, and their leases
expire or are recovered, so the events run again). SQLite needs none of this: its
writer already commits everything one loop iteration submits together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..records import Completion

_Waiter = tuple[Sequence[Completion], "asyncio.Future[None]"]


class Completions:
    """Collects each loop iteration's completions and records them with one call."""

    def __init__(
        self, record: Callable[[Sequence[Completion], float | None], Awaitable[None]]
    ) -> None:
        self._record = record
        self._pending: list[_Waiter] | None = None
        self._now: float | None = None  # the batch's time: its first submitter's
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, completions: Sequence[Completion], now: float | None) -> None:
        """Record ``completions`` with the others of this loop iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._pending is None:
            self._pending, self._now = [], now
            loop.call_soon(self._flush, loop)
        self._pending.append((completions, future))
        await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters, self._pending = self._pending or [], None
        task = loop.create_task(self._commit(waiters, self._now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, waiters: list[_Waiter], now: float | None) -> None:
        try:
            await self._record([done for batch, _ in waiters for done in batch], now)
        except Exception as exc:
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:  # cancelled: nobody gets an answer
            for _, future in waiters:
                future.cancel()
            raise
        else:
            for _, future in waiters:
                if not future.done():
                    future.set_result(None)
