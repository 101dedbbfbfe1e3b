"""The worker: leases accepted events and runs their handlers after the 200.

Per event it runs every handler that has not finished yet (a retry re-runs only what
failed), records each run, and decides the event's next state: ``done``; ``pending`` again
after an exponential backoff with jitter; or ``dead`` (the dead-letter, keeping the last
error) once a handler used up ``max_attempts``. Leases expire, so an event held by a
crashed worker is picked up again; a heartbeat renews the leases of live work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable

from ..metrics import Metrics
from ..settings import Settings
from ..store import Claimed, Completion, Store
from .dispatcher import Dispatcher
from .registry import Registry

log = logging.getLogger("receiver.worker")

YIELD_SECONDS = 0.1
"""While webhooks wait for their 200, the worker claims one batch per this interval."""
CLAIM_FAILURES_LOGGED_EVERY = 60
"""While claims keep failing (a store outage), one log line per this many of them."""


class Worker:
    """Runs handlers for pending events with bounded concurrency."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: Settings,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
        busy: Callable[[], bool] = lambda: False,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.busy = busy
        self.pause = pause
        self.settings = settings
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.dispatcher = Dispatcher(
            registry, store, settings, self.metrics, clock=clock, jitter=jitter
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._working: set[int] = set()  # ids of the events whose handlers run now
        self._running = False
        self._loop_done = asyncio.Event()
        self._claim_failures = 0  # consecutive
        self.processed = 0

    def notify(self) -> None:
        """Wake the worker: new work was committed."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and process events until `stop` is called."""
        beat = asyncio.create_task(self._heartbeat())
        self._running = True
        self._loop_done.clear()
        try:
            while not self._stopping:
                free = self.settings.worker_concurrency - len(self._in_flight)
                if free > 0 and self.busy():
                    self.metrics.worker_yields.inc()
                    await self.pause(YIELD_SECONDS)
                    if self._stopping:
                        break
                    free = self.settings.worker_concurrency - len(self._in_flight)
                self._wake.clear()
                claimed = await self._claim(free) if free > 0 else []
                if self._stopping:
                    if claimed:  # stop() ran during the claim: hand these straight back
                        # (these only: the handlers in flight still hold theirs)
                        await self.store.release(self.owner, [event.id for event in claimed])
                    break
                for event in claimed:
                    task = asyncio.create_task(self._process(event))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if free <= 0 or len(claimed) < free:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_seconds)
        finally:
            self._running = False
            self._loop_done.set()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let work in flight finish within ``grace``, release the rest."""
        self._stopping = True
        self._wake.set()
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._running:
            # A claim may be under way: the loop releases what it returns (bounded wait).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._loop_done.wait(), grace or 0.0)
        if self._in_flight:
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
                log.warning("shutdown: released %d unfinished events", len(unfinished))
        await self.store.release(self.owner)

    async def run_once(self) -> int:
        """Claim one batch and process it to the end (tests, CLI replays)."""
        claimed = await self._claim(self.settings.worker_concurrency)
        await asyncio.gather(*(self._process(event) for event in claimed))
        return len(claimed)

    async def drain(self, deadline: float = 10.0) -> int:
        """Process batches until nothing is due; return how many events ran."""
        total = 0
        end = time.monotonic() + deadline
        while time.monotonic() < end and (count := await self.run_once()):
            total += count
        return total

    async def _claim(self, limit: int) -> list[Claimed]:
        try:
            claimed = await self.store.claim(
                self.owner, limit, self.settings.lease_seconds, now=self.clock()
            )
        except Exception as exc:
            # An outage fails every poll: its traceback once, then a reminder now and then.
            self._claim_failures += 1
            if self._claim_failures == 1:
                log.exception(
                    "worker: claiming events failed; retrying every poll interval"
                    " (logged again every %d failures, and when it works)",
                    CLAIM_FAILURES_LOGGED_EVERY,
                )
            elif self._claim_failures % CLAIM_FAILURES_LOGGED_EVERY == 0:
                log.error(
                    "worker: claiming events still fails (%d attempts): %s",
                    self._claim_failures,
                    exc,
                )
            return []
        if self._claim_failures:
            log.warning(
                "worker: claiming events works again after %d failed attempts",
                self._claim_failures,
            )
            self._claim_failures = 0
        return claimed

    async def _process(self, event: Claimed) -> None:
        self._working.add(event.id)
        try:
            completion: Completion = await self.dispatcher.run(event)
            try:
                await self.store.complete(self.owner, [completion], now=self.clock())
            except Exception:
                # The heartbeat no longer renews this lease: it expires, and a later
                # claim re-runs what was not recorded.
                log.exception("worker: recording event %d failed; it will be retried", event.id)
        finally:
            self._working.discard(event.id)
        self.processed += 1

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _heartbeat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if self._working:
                    until = self.clock() + self.settings.lease_seconds
                    await self.store.renew(self.owner, until, sorted(self._working))
                await self.store.heartbeat(self.owner, self.clock())
            except Exception:
                log.exception("worker: heartbeat failed")
