"""Dispatch: run the handlers an event still owes and decide what happens next.

Knows nothing of HTTP; the worker feeds it leased events and records its `Completion`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from ..backoff import backoff as delay
from ..errors import PayloadError, RetryLater
from ..logs import EventLog, scrub
from ..metrics import Metrics
from ..mta.events import Event, normalize
from ..mta.fields import clean_text
from ..mta.payload import parse
from ..settings import Settings
from ..store import DEAD, DONE, FAILED, PENDING, Claimed, Completion, HandlerRun, Store
from .context import Context, StoreView
from .registry import Handler, Registry
from .watchdog import Watchdog

log = logging.getLogger("receiver.dispatch")


def backoff(attempt: int, settings: Settings, jitter: Callable[[], float]) -> float:
    """Seconds before handler retry ``attempt`` (1-based), from the retry settings."""
    return delay(attempt, settings.retry_base_seconds, settings.retry_max_seconds, jitter)


class Dispatcher:
    """Runs one event's handlers, most specific first, and collects their outcomes."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.store = store
        # All handlers see of the store.
        self._view = StoreView(store, settings.opt_out_scope == "global")
        self.settings = settings
        self.metrics = metrics
        self._runs = functools.cache(metrics.handler_runs.labels)
        self._seconds = functools.cache(metrics.handler_seconds.labels)
        self.clock = clock
        self.jitter = jitter
        self._watchdog = Watchdog(settings.handler_timeout)

    async def run(self, claimed: Claimed) -> Completion:
        """Run what ``claimed`` still owes; return its runs and next state."""
        event = _event(claimed, self.settings.default_country_code)
        event_log = EventLog(log, event, self.settings.redact)
        runs: list[HandlerRun] = []
        delays: list[float] = []
        last_error: str | None = None
        for name, handler in self.registry.handlers_for(event.name, event.account):
            previous = claimed.runs.get(name)
            if previous is not None and previous.state in (DONE, DEAD):
                continue
            attempt = (previous.attempts if previous else 0) + 1
            ctx = Context(self._view, self.settings, event_log, name, attempt, event.account)
            started = time.perf_counter()
            try:
                await self._call(handler, event, ctx)
            except Exception as exc:
                self._seconds(name).observe(time.perf_counter() - started)
                # Kept for the dashboard and CLI: no number or text a handler quoted.
                error = f"{name}: {type(exc).__name__}: {exc}"
                last_error = clean_text(scrub(error, event_log.masks))
                dead = attempt >= self.settings.max_attempts
                self._runs(name, "dead" if dead else "failed", event.account).inc()
                runs.append(HandlerRun(name, DEAD if dead else FAILED, attempt, last_error))
                if not dead:
                    delays.append(
                        exc.delay
                        if isinstance(exc, RetryLater)
                        else backoff(attempt, self.settings, self.jitter)
                    )
                event_log.log(
                    logging.ERROR if dead else logging.WARNING,
                    "handler %s failed (attempt %d/%d, %s): %s",
                    name,
                    attempt,
                    self.settings.max_attempts,
                    "dead-lettered" if dead else "will retry",
                    last_error,
                    exc_info=not isinstance(exc, RetryLater),
                )
                await self._on_error(exc, event, ctx)
            else:
                runs.append(HandlerRun(name, DONE, attempt))
                elapsed = time.perf_counter() - started
                self._seconds(name).observe(elapsed)
                self._runs(name, "done", event.account).inc()
                event_log.debug("handler %s done in %.1f ms", name, elapsed * 1e3)
        now = self.clock()
        if delays:
            return Completion(claimed.id, PENDING, now + max(delays), tuple(runs), last_error)
        dead_runs = [r for r in (*runs, *claimed.runs.values()) if r.state == DEAD]
        dead = bool(dead_runs)
        if dead and last_error is None:
            # This pass ran cleanly, but a handler died in an earlier one: keep its error.
            last_error = dead_runs[0].last_error
        if dead:
            self.metrics.dead_letters.inc()
            event_log.error("event dead-lettered: %s", last_error, extra={"outcome": "dead"})
        return Completion(claimed.id, DEAD if dead else DONE, now, tuple(runs), last_error)

    async def _call(self, handler: Handler, event: Event, ctx: Context) -> None:
        """Run one handler within `Settings.handler_timeout`. Its overrun, or a
        CancelledError of its own making (not the worker's shutdown), is its failure."""
        task = asyncio.current_task()
        assert task is not None
        self._watchdog.start(task)
        try:
            await handler(event, ctx)
        except asyncio.CancelledError as exc:
            late = self._watchdog.finish(task)
            if task.cancelling():
                raise  # the worker is stopping: the event is released, not failed
            if late:
                seconds = self.settings.handler_timeout
                raise HandlerTimeout(f"still running after {seconds:g} s, cancelled") from exc
            raise HandlerCancelled("cancelled itself (CancelledError)") from exc
        except BaseException:
            self._watchdog.finish(task)
            raise
        else:
            # Late but done: it swallowed the cancellation and returned. Done it is.
            self._watchdog.finish(task)

    async def _on_error(self, error: Exception, event: Event, ctx: Context) -> None:
        for handler in self.registry.error_handlers:
            try:
                await handler(error, event, ctx)
            except Exception:
                ctx.log.exception("error handler %r failed", handler)


class HandlerTimeout(Exception):
    """A handler ran past ``RECEIVER_HANDLER_TIMEOUT``."""


class HandlerCancelled(Exception):
    """A handler raised CancelledError while nobody cancelled the worker."""


def _event(claimed: Claimed, country: str) -> Event:
    try:
        payload = parse(claimed.body)
    except PayloadError:  # quarantined rows are never claimed; stay safe anyway
        payload = {}
    return normalize(
        payload,
        claimed.received_at,
        hinted_type=claimed.type,
        event_id=claimed.id,
        country=country,
        account=claimed.account,
    )
