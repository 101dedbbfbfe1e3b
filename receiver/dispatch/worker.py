"""The worker: leases accepted events and runs their handlers after the 200.

Per event it runs every handler that has not finished yet (a retry re-runs only what
failed), records each run, and decides the event's next state: ``done``; ``pending`` again
after an exponential backoff with jitter; or ``dead`` (the dead-letter, keeping the last
error) once a handler used up ``max_attempts``. Leases expire, so an event held by a
crashed worker is picked up again; a heartbeat renews the leases of live work.

Every worker writes a heartbeat row every `heartbeat_interval`, the first one before its
first claim. A worker that starts, or finds less work than it has room for, releases the
leases of owners whose heartbeat is `HEARTBEAT_MISSES` intervals old: a process killed
with SIGKILL and restarted resumes its work within seconds instead of a whole lease. A
live owner whose handlers are merely slow keeps beating, so it keeps its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
GATHER_SECONDS = 0.01
"""Once the worker has caught up, new events gather this long before its next claim: one
claim (and one completion statement) for the events of many webhook commits instead of
one each, so at a steady rate the worker's store work costs per batch, not per event."""
CLAIM_FAILURES_LOGGED_EVERY = 60
"""While claims keep failing (a store outage), one log line per this many of them."""

HEARTBEAT_MISSES = 5
"""Heartbeat intervals without a beat after which an owner counts as dead. Several, so
that a slow commit or a busy event loop does not cost a live owner its leases."""


def heartbeat_interval(settings: Settings) -> float:
    """Seconds between two heartbeat rows (at least three per lease)."""
    return min(settings.heartbeat_seconds, settings.lease_seconds / 3)


def stale_after(settings: Settings) -> float:
    """Age of a heartbeat after which its owner's leases are taken over."""
    return HEARTBEAT_MISSES * heartbeat_interval(settings)


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
        gather: float = GATHER_SECONDS,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.busy = busy
        self.pause = pause
        self.gather = gather
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
        self._recovered_at = -math.inf  # time.monotonic() of the last recovery
        self.processed = 0

    def notify(self) -> None:
        """Wake the worker: new work was committed."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and process events until `stop` is called."""
        self._running = True
        self._loop_done.clear()
        await self._beat()  # before the first claim: our leases are never ownerless
        beat = asyncio.create_task(self._heartbeat())
        # Commits by other processes wake us too (PostgreSQL: LISTEN/NOTIFY).
        watch = asyncio.create_task(self.store.watch(self.notify))
        try:
            await self._recover()
            while not self._stopping:
                free = self._room()
                if free > 0 and self.busy():
                    self.metrics.worker_yields.inc()
                    await self.pause(YIELD_SECONDS)
                    if self._stopping:
                        break
                    free = self._room()
                self._wake.clear()
                # Half the slots at a time: the next batch is claimed while the last runs.
                limit = min(free, max(1, self.settings.worker_concurrency // 2))
                claimed = await self._claim(limit) if free > 0 else []
                if self._stopping:
                    if claimed:  # stop() ran during the claim: hand these straight back
                        # (these only: the handlers in flight still hold theirs)
                        await self.store.release(self.owner, [event.id for event in claimed])
                    break
                for event in claimed:
                    task = asyncio.create_task(self._process(event))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if free <= 0 or len(claimed) < limit:
                    if free > 0 and await self._recover():
                        continue  # a dead owner's events are claimable now
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.worker_poll_seconds):
                            await self._wake.wait()
                    if free > 0 and self.gather > 0 and not self._stopping:
                        await asyncio.sleep(self.gather)  # caught up: let new events gather
        finally:
            self._running = False
            self._loop_done.set()
            for task in (beat, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _room(self) -> int:
        """How many events to claim now: the free slots."""
        return self.settings.worker_concurrency - len(self._in_flight)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; let work in flight finish within ``grace``, release the rest."""
        self._stopping = True
        self._wake.set()
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._running:
            # A claim may be under way: the loop releases what it returns (bounded wait).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace or 0.0):
                    await self._loop_done.wait()
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

    async def _recover(self) -> int:
        """Release the leases of dead owners; at most once per heartbeat interval."""
        started = time.monotonic()
        if started - self._recovered_at < heartbeat_interval(self.settings):
            return 0
        self._recovered_at = started
        try:
            stale_before = self.clock() - stale_after(self.settings)
            released = await self.store.recover(self.owner, stale_before)
        except Exception:
            log.exception("worker: recovering the leases of dead workers failed")
            return 0
        if released:
            log.warning("worker: took over %d events leased by dead workers", released)
        return released

    async def _beat(self) -> None:
        try:
            await self.store.heartbeat(self.owner, self.clock())
        except Exception:
            log.exception("worker: heartbeat failed")

    async def _heartbeat(self) -> None:
        interval = heartbeat_interval(self.settings)
        renew_every = self.settings.lease_seconds / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            if self._working and time.monotonic() - renewed >= renew_every - interval / 2:
                renewed = time.monotonic()
                try:
                    until = self.clock() + self.settings.lease_seconds
                    await self.store.renew(self.owner, until, sorted(self._working))
                except Exception:
                    log.exception("worker: renewing the leases of work in hand failed")
            await self._beat()
