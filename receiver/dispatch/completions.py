"""The worker's completions, recorded in batches: one `Store.complete` per loop iteration.

Handlers that finish during the same event-loop iteration hand their `Completion` over
together at its end (``loop.call_soon``), and one store call records them all: on
PostgreSQL one statement, one round trip, whatever their number. Each submitter resumes
only once its completion is recorded (or the batch failed: then every one of them sees
the error, and their leases expire or are recovered, so the events run again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..store import Completion

_Waiter = tuple[Completion, "asyncio.Future[None]"]


class Completions:
    """Collects each loop iteration's completions and records them with one call."""

    def __init__(self, record: Callable[[Sequence[Completion]], Awaitable[None]]) -> None:
        self._record = record
        self._pending: list[_Waiter] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, completion: Completion) -> None:
        """Record ``completion`` with the others of this loop iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._pending is None:
            self._pending = []
            loop.call_soon(self._flush, loop)
        self._pending.append((completion, future))
        await future

    async def idle(self) -> None:
        """Wait until every batch handed over so far is recorded (or failed)."""
        while self._pending or self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._pending:
                await asyncio.sleep(0)  # its flush is scheduled: let it run

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters, self._pending = self._pending or [], None
        task = loop.create_task(self._commit(waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, waiters: list[_Waiter]) -> None:
        try:
            await self._record([completion for completion, _ in waiters])
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
