"""Workers wake on commit, across processes: PostgreSQL's LISTEN/NOTIFY.

Once webhooks committed new events, the process announces it (`Announcer`):
``pg_notify(WAKE_CHANNEL, '')`` in a short transaction of its own, one at a time and at
most one per `ANNOUNCE_SPACING` (10 ms, as long as workers let new events gather
anyway), those asked for meanwhile folded into the next. Not inside the webhooks' own
statements: PostgreSQL serialises the commits of transactions that notify (they hold a
lock on the notification queue until their commit is flushed), so notifying in every
ingest made concurrent webhooks wait for each other's WAL flushes instead of sharing
one. Each
worker keeps one dedicated connection, outside the pool, that LISTENs on the channel and
wakes the worker on each notification.

The worker still polls every ``RECEIVER_WORKER_POLL_SECONDS`` (retries fall due without
any commit), so a lost notification (a process killed between its commit and its
announcement) or a lost listener costs latency, never work: the listener is reconnected
after `RETRY_SECONDS`, a silently dead one is found by a ``SELECT 1`` every
`CHECK_SECONDS`, and the worker is woken on every (re)connection for whatever committed
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from .statements import WAKE_CHANNEL

log = logging.getLogger("receiver.store")

RETRY_SECONDS = 1.0
"""Wait before reconnecting a listener that dropped or could not connect."""
CHECK_SECONDS = 15.0
"""An idle listener proves its connection alive this often."""


async def listen(url: str, wake: Callable[[], None], retry: float = RETRY_SECONDS) -> None:
    """Call ``wake`` on each notification of `WAKE_CHANNEL`, until cancelled."""
    failures = 0
    while True:
        try:
            await _session(url, wake)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if failures == 1:  # once per outage, not once per retry
                log.warning(
                    "worker wake-up listener lost (%s: %s); polling until it reconnects",
                    type(exc).__name__,
                    exc,
                )
        await asyncio.sleep(retry)


async def _session(url: str, wake: Callable[[], None]) -> None:
    """One listening connection, until it is lost."""
    conn = await asyncpg.connect(url, timeout=10)
    lost = asyncio.Event()

    def on_notify(*_: Any) -> None:
        wake()

    try:
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(WAKE_CHANNEL, on_notify)
        wake()  # events committed while nobody listened
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_SECONDS):
                    await lost.wait()
                continue
            await conn.fetchval("SELECT 1", timeout=10)
        raise ConnectionError("the listening connection was closed")
    finally:
        conn.terminate()


ANNOUNCE_SPACING = 0.01
"""At least this long between two NOTIFYs of one process. Under load every commit
would otherwise be followed by one (each a transaction of its own, for both sides'
CPU); the workers let new events gather for as long before they claim anyway."""


class Announcer:
    """Calls ``notify`` (one NOTIFY) after each commit of new events, never two at once
    nor two within ``spacing`` seconds: the commits made meanwhile are announced
    together by the next."""

    def __init__(
        self, notify: Callable[[], Awaitable[None]], spacing: float = ANNOUNCE_SPACING
    ) -> None:
        self._notify = notify
        self.spacing = spacing
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._last = -spacing  # loop time of the last NOTIFY
        self._closed = False

    def __call__(self) -> None:
        """Announce the commit just made (returns at once)."""
        if self._closed:  # shutting down: the other workers' poll finds the last events
            return
        if self._task is not None:
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                # The commits of this pause go with the next one too.
                await asyncio.sleep(max(0.0, self._last + self.spacing - loop.time()))
                self._again = False
                self._last = loop.time()
                try:
                    await self._notify()
                except Exception as exc:  # the events are stored: the workers' poll finds them
                    log.warning(
                        "could not wake the other workers (%s: %s); they will poll",
                        type(exc).__name__,
                        exc,
                    )
                if not self._again:
                    return
        finally:
            self._task = None

    async def close(self) -> None:
        """Announce nothing more; wait for the announcement under way, if any."""
        self._closed = True
        if self._task is not None:
            await asyncio.shield(self._task)
