"""The resend outbox: sends due resends through MTA, at most once per original message.

It leases due resends, keeps their leases alive, and runs each one's step
(receiver/fallback/steps.py). A resend is marked ``sending`` (committed) *before* the
call, so a crash mid-call can never lead to a blind second send: a ``sending`` row whose
lease expired is treated like a timeout and waits, as ``reconciling``, for a webhook
carrying the resend's externalId. If none comes within
``RECEIVER_FALLBACK_RECONCILE_SECONDS`` it becomes ``unknown`` for an operator (or is
sent again when ``RECEIVER_FALLBACK_RESEND_UNKNOWN`` says so).

Each resend goes out through its own account's `Sender`: MTA's message ids, API keys and
send limits are per account (docs/accounts.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping

from ..metrics import Metrics
from ..settings import Settings
from ..store import Resend, ResendState, Store
from .content import TextLookup
from .sender import Sender
from .steps import Steps, log_fields

log = logging.getLogger("receiver.outbox")


ERROR_DELAY_SECONDS = 30.0
"""A scheduled resend whose step failed outside MTA (the store, a text lookup) waits
this long before the next try."""


class Outbox:
    """Leases due resends and carries each one step further."""

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        settings: Settings,
        metrics: Metrics,
        *,
        text_lookup: TextLookup | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = 8,
    ) -> None:
        self.resends = store.resends
        self.steps = Steps(store, senders, settings, metrics, text_lookup, clock)
        self.owner = owner or f"outbox-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.concurrency = concurrency
        self.poll = min(settings.worker_poll_seconds, 0.25)
        # Long enough for a send with its retries; renewed while a send takes longer (a
        # 429's Retry-After may ask for up to 300 s).
        retries = max((s.client.max_retries for s in senders.values()), default=0)
        self.lease = settings.mta_timeout * (retries + 2) + 30
        self._stopping = asyncio.Event()
        self._working: set[tuple[str, str]] = set()  # (account, original) of resends in hand

    async def run(self) -> None:
        """Process due resends until `stop`."""
        beat = asyncio.create_task(self._heartbeat())
        try:
            while not self._stopping.is_set():
                try:
                    count = await self.run_once()
                except Exception:
                    log.exception("outbox: pass failed; trying again after the poll interval")
                    count = 0
                if count < self.concurrency:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll):
                            await self._stopping.wait()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                until = self.clock() + self.lease
                await self.resends.renew(self.owner, until, sorted(self._working))
            except Exception:
                log.exception("outbox: renewing the leases of resends in hand failed")

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stopping.set()

    async def run_once(self) -> int:
        """Lease one batch of due resends and process it; return its size."""
        now = self.clock()
        due = await self.resends.claim_due(self.owner, now, self.lease, self.concurrency)
        await asyncio.gather(*(self._step(resend) for resend in due))
        return len(due)

    async def _step(self, resend: Resend) -> None:
        self._working.add((resend.account, resend.original_message_id))
        try:
            await self.steps.carry(resend)
        except Exception as exc:
            # Not from MTA (those are handled in _send): the store, or the user's text
            # lookup. A scheduled resend waits a while instead of failing every pass.
            log.exception(
                "outbox: resend of %s failed; trying again in %.0f s",
                resend.original_message_id,
                ERROR_DELAY_SECONDS,
                extra=log_fields(resend),
            )
            if resend.state == ResendState.SCHEDULED:
                with contextlib.suppress(Exception):  # the store may be what failed
                    await self.steps.postpone(resend, exc, ERROR_DELAY_SECONDS)
        finally:
            self._working.discard((resend.account, resend.original_message_id))
            await self.resends.release(resend.original_message_id, self.owner, resend.account)
