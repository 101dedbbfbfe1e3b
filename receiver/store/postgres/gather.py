"""Calls made during one event-loop iteration, run together: one round trip for all.

The worker starts the handlers of a claimed batch in the same loop iteration, so their
store calls arrive together; each submitter resumes once its part is done (or sees the
batch's error: every part of a failed batch failed, nothing of it committed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Gathered(Generic[Item, Result]):
    """Collects each loop iteration's items and runs them with one call of ``run``,
    which returns one result per item, in order."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._run = run
        self._pending: list[tuple[Item, asyncio.Future[Result]]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        """Run ``item`` with the others of this loop iteration; its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if self._pending is None:
            self._pending = []
            loop.call_soon(self._flush, loop)
        self._pending.append((item, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters, self._pending = self._pending or [], None
        task = loop.create_task(self._commit(waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, waiters: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in waiters])
        except Exception as exc:
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:  # cancelled: nobody gets an answer
            for _, future in waiters:
                future.cancel()
            raise
        else:
            for (_, future), result in zip(waiters, results, strict=True):
                if not future.done():  # the submitter went away meanwhile
                    future.set_result(result)
