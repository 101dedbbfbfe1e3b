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
    which returns one outcome per item, in order: a result, or the exception that item
    alone failed with.

    With ``max_in_flight``, at most that many calls run at once; while they are under
    way, the items that arrive gather into the next call, made as soon as one finishes:
    under load calls grow instead of queueing for pool connections one by one.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        max_in_flight: int | None = None,
    ) -> None:
        self._run = run
        self.max_in_flight = max_in_flight
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
        if self.max_in_flight is not None and len(self._tasks) >= self.max_in_flight:
            return  # `_finished` flushes what gathers meanwhile
        waiters, self._pending = self._pending or [], None
        if not waiters:
            return
        task = loop.create_task(self._commit(waiters))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending:
            self._flush(task.get_loop())

    async def _commit(self, waiters: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            outcomes = await self._run([item for item, _ in waiters])
        except Exception as exc:
            outcomes = [exc] * len(waiters)
        except BaseException:  # cancelled: nobody gets an answer
            for _, future in waiters:
                future.cancel()
            raise
        for (_, future), outcome in zip(waiters, outcomes, strict=True):
            if future.done():  # the submitter went away meanwhile
                continue
            if isinstance(outcome, asyncio.CancelledError):
                future.cancel()
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
