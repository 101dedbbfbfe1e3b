"""Workers wake on commit, across processes: PostgreSQL's LISTEN/NOTIFY.

Every ingest statement ends with ``pg_notify(WAKE_CHANNEL, '')``; PostgreSQL delivers the
notification when (and only if) its transaction commits, and folds the notifications of
one transaction into one. Each worker keeps one dedicated connection, outside the pool,
that LISTENs on the channel and wakes the worker on each notification.

The worker still polls every ``RECEIVER_WORKER_POLL_SECONDS`` (retries fall due without
any commit), so a lost listener costs latency, never work: it is reconnected after
`RETRY_SECONDS`, a silently dead one is found by a ``SELECT 1`` every `CHECK_SECONDS`,
and the worker is woken on every (re)connection for whatever committed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
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
                await asyncio.wait_for(lost.wait(), CHECK_SECONDS)
                continue
            await conn.fetchval("SELECT 1", timeout=10)
        raise ConnectionError("the listening connection was closed")
    finally:
        conn.terminate()
