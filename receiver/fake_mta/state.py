"""The fake MTA's state, shared between the server thread and the test thread.

Every read and write goes through one re-entrant lock; readers get snapshots. Handlers on
the server's event loop never hold the lock across an ``await``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .ratelimit import Decision, SlidingWindow
from .records import (
    FAULT_KINDS,
    WEBHOOK_OPTIONS,
    Fault,
    FaultKind,
    RecordedRequest,
    SendRecord,
    Webhook,
    WebhookDelivery,
)
from .sent import SentLog

__all__ = ["FakeMTA"]


class FakeMTA:
    """State and knobs of one fake MTA account.

    Plain attributes are settings a test may change between requests:
    ``rate_limit``/``rate_window`` (docs/mta.md: 25 per 15 s on ``/send``), ``auto_timeline``
    (status codes played to registered webhooks after each send; empty = off),
    ``wrap_send_response`` (``{"success", "data"}`` shape or bare), ``delete_returns_204``,
    ``reject_repeated_request_id`` (409 on a repeated X-Request-Id; unconfirmed in docs/mta.md),
    ``max_sms_length`` (None = no check), ``hang_limit`` (seconds a ``hang`` lasts at most),
    ``webhook_backoff`` (seconds before the first webhook retry), ``first_page`` (what
    lists count pages from: 0 as MTA's example shows, 1 to test the other base),
    ``webhooks_down`` (an outage: timelines still happen, as ``/deliveries`` then shows,
    but none of their webhooks is delivered).
    """

    def __init__(
        self,
        api_key: str | Sequence[str] = "test-api-key",
        *,
        rate_limit: int = 25,
        rate_window: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        first_message_id: int = 1,
        first_page: int = 0,
    ) -> None:
        # Several keys: several MTA accounts on one fake. Each sees only its own sends,
        # records and webhook registrations, and has its own send-rate window, as MTA's
        # accounts do (docs/mta.md "Limits and errors": the limit is per account).
        self.api_keys = (api_key,) if isinstance(api_key, str) else tuple(api_key)
        self.api_key = self.api_keys[0]
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.first_page = first_page
        self.auto_timeline: Sequence[int] = ()
        self.wrap_send_response = True
        self.delete_returns_204 = False
        self.reject_repeated_request_id = False
        self.max_sms_length: int | None = 160  # docs/mta.md: longer SMS text gets a 400
        self.hang_limit = 60.0
        self.webhook_backoff = 1.0
        self.webhooks_down = False
        self._clock = clock
        self._cond = threading.Condition(threading.RLock())
        self._window = SlidingWindow()
        self.sent = SentLog()
        """What ``/sent-messages`` serves: every accepted send, and any a test adds."""
        self.general_rate_limit = 30  # docs/mta.md: most endpoints, 30 per minute
        self.general_rate_window = 60.0
        self._next_message_id = first_message_id
        self._next_webhook_id = 1
        self._requests: list[RecordedRequest] = []
        self._sends: list[SendRecord] = []
        self._faults: deque[Fault] = deque()
        self._webhooks: dict[int, Webhook] = {}
        self._deliveries: list[WebhookDelivery] = []
        self._violations = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def __repr__(self) -> str:
        return f"FakeMTA(sends={len(self.sends)}, webhooks={len(self.webhooks)})"

    # -- what tests read -------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to the MTA API (not ``/_fake``), oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def sends(self) -> list[SendRecord]:
        """Every accepted ``/send``, oldest first."""
        with self._cond:
            return list(self._sends)

    @property
    def webhooks(self) -> list[Webhook]:
        """Current webhook registrations, by id."""
        with self._cond:
            return [w.copy() for w in self._webhooks.values()]

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Webhooks the auto timeline sent, in the order they finished."""
        with self._cond:
            return list(self._deliveries)

    @property
    def rate_limit_violations(self) -> int:
        """How many ``/send`` requests arrived over the rate limit (each got a 429)."""
        with self._cond:
            return self._violations

    @property
    def hanging(self) -> int:
        """How many requests a ``hang`` or ``slow`` fault is holding right now."""
        with self._cond:
            return len(self._waiters)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true or ``timeout`` passes; returns its last value.

        Wakes on every state change. Blocks the calling thread: from async code use
        ``asyncio.to_thread``.
        """
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def reset(self) -> None:
        """Forget requests, sends, deliveries, faults, violations and rate-limit history."""
        with self._cond:
            self._requests.clear()
            self._sends.clear()
            self._deliveries.clear()
            self._faults.clear()
            self._window.clear()
            self.sent.clear()
            self._violations = 0
            self._cond.notify_all()

    # -- faults ----------------------------------------------------------------------
    def fail_next(
        self, n: int, kind: FaultKind, *, delay: float = 1.0, retry_after: int = 1
    ) -> None:
        """Make the next ``n`` authorised, in-limit ``/send`` requests show ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._cond:
            self._faults.extend(Fault(kind, delay, retry_after) for _ in range(n))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._cond:
            self._faults.clear()

    def take_fault(self) -> Fault | None:
        """The next queued fault, removed from the queue, or None."""
        with self._cond:
            return self._faults.popleft() if self._faults else None

    # -- used by the app -------------------------------------------------------------
    def record_request(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any
    ) -> None:
        """Log one arriving request."""
        with self._cond:
            now = self._clock()
            self._requests.append(RecordedRequest(method, path, query, headers, body, now))
            self._cond.notify_all()

    def check_rate(self, key: str, *, general: bool = False) -> Decision:
        """Account one ``/send`` for ``key`` (or, ``general``, one call to another
        endpoint); counts a violation when over the limit."""
        with self._cond:
            if general:
                limit, window = self.general_rate_limit, self.general_rate_window
                key = f"general:{key}"
            else:
                limit, window = self.rate_limit, self.rate_window
            decision = self._window.hit(key, self._clock(), limit, window)
            if not decision.allowed:
                self._violations += 1
                self._cond.notify_all()
            return decision

    def record_send(
        self,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        request_id: str | None,
        api_key: str | None = None,
    ) -> SendRecord | None:
        """Accept a send of the account of ``api_key`` (default: the first) and give it
        the next messageId; None for a rejected repeat id."""
        api_key = api_key or self.api_key
        with self._cond:
            repeated = request_id is not None and any(
                s.request_id == request_id for s in self._sends
            )
            if repeated and self.reject_repeated_request_id:
                return None
            record = SendRecord(
                self._next_message_id, body, headers, request_id, self._clock(), api_key
            )
            self._next_message_id += 1
            self._sends.append(record)
            subscribers = body.get("subscribers")
            text = body.get("message")
            external_id = body.get("externalId")
            self.sent.add(
                record.message_id,
                subscribers if isinstance(subscribers, list) else [],
                text if isinstance(text, str) else None,
                str(external_id) if external_id is not None else None,
                api_key,
            )
            self._cond.notify_all()
            return record

    def add_webhook(
        self,
        event: str,
        url: str,
        secret: str | None,
        options: Mapping[str, Any],
        owner: str | None = None,
    ) -> Webhook:
        """Register a webhook of the account of API key ``owner`` (default: the first);
        the same (event, url) twice makes two (docs/mta.md)."""
        with self._cond:
            known = {k: v for k, v in options.items() if k in WEBHOOK_OPTIONS}
            created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            options = {**WEBHOOK_OPTIONS, **known}
            hook = Webhook(
                self._next_webhook_id, event, url, secret, options, created, owner or self.api_key
            )
            self._next_webhook_id += 1
            self._webhooks[hook.id] = hook
            self._cond.notify_all()
            return hook.copy()

    def update_webhook(
        self, webhook_id: int, changes: Mapping[str, Any], owner: str | None = None
    ) -> Webhook | None:
        """Apply a PATCH; None when there is no such registration (of ``owner``'s account)."""
        with self._cond:
            hook = self._webhooks.get(webhook_id)
            if hook is None or hook.owner != (owner or self.api_key):
                return None
            hook.apply(changes)
            self._cond.notify_all()
            return hook.copy()

    def delete_webhook(self, webhook_id: int, owner: str | None = None) -> bool:
        """Remove a registration; False when there was none (of ``owner``'s account)."""
        with self._cond:
            hook = self._webhooks.get(webhook_id)
            found = hook is not None and hook.owner == (owner or self.api_key)
            if found:
                del self._webhooks[webhook_id]
            self._cond.notify_all()
            return found

    def record_delivery(self, delivery: WebhookDelivery) -> None:
        """Log one webhook sent by the auto timeline."""
        with self._cond:
            self._deliveries.append(delivery)
            self._cond.notify_all()

    # -- hangs -------------------------------------------------------------------------
    def add_waiter(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Track a hanging request so :meth:`release_hangs` can end it."""
        with self._cond:
            self._waiters.add((loop, event))
            self._cond.notify_all()

    def remove_waiter(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Stop tracking a hanging request."""
        with self._cond:
            self._waiters.discard((loop, event))
            self._cond.notify_all()

    def release_hangs(self) -> None:
        """End every hanging request now (they drop their connection); any thread."""
        with self._cond:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)
