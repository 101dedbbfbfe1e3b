"""One step of one resend, by its state: send a scheduled one, reconcile one whose send
was lost, let an operator decide one whose outcome never came (receiver/fallback/outbox.py
leases them and runs these). Every move is one conditional statement
(receiver/fallback/policy.py), so a DELIVERED that lands meanwhile always wins."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..backoff import backoff
from ..metrics import Metrics
from ..mta import MTAOutcomeUnknown, MTARejected, MTAUnavailable, SendWithdrawn
from ..settings import Settings
from ..store import Resend, ResendState, Store
from .content import TextLookup, called_off, original_text, send_payload
from .policy import MOVES, Move, move
from .sender import NO_SENDER, Sender

log = logging.getLogger("receiver.outbox")


class Steps:
    """Carries one resend one step further, with its account's `Sender`."""

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        settings: Settings,
        metrics: Metrics,
        text_lookup: TextLookup | None,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.resends = store.resends
        self.senders = senders
        self.settings = settings
        self.metrics = metrics
        self.text_lookup = text_lookup
        self.global_opt_outs = settings.opt_out_scope == "global"
        self.clock = clock

    async def carry(self, resend: Resend) -> None:
        """The step ``resend``'s state calls for."""
        if resend.state == ResendState.SENDING:
            await self._lost_mid_send(resend)
        elif resend.state == ResendState.RECONCILING:
            await self._window_passed(resend)
        else:
            await self._send(resend)

    async def postpone(self, resend: Resend, exc: Exception, delay: float) -> None:
        """A scheduled resend whose step failed outside MTA waits ``delay`` seconds."""
        now = self.clock()
        await self._move(
            resend,
            Move.POSTPONE,
            now=now,
            due_at=now + delay,
            reason=f"error: {type(exc).__name__}: {exc}"[:200],
        )

    async def _send(self, resend: Resend) -> None:
        original, now = resend.original_message_id, self.clock()
        sender = self.senders.get(resend.account)
        if sender is None:
            log.error(
                "resend of %s skipped: account %r has no API key or fallback any more",
                original,
                resend.account,
                extra=log_fields(resend),
            )
            await self._finish(resend, Move.SKIP, reason=NO_SENDER)
            return
        if stop := await called_off(self.store, resend, self.global_opt_outs):
            await self._finish(resend, stop[0], reason=stop[1])
            return
        text = resend.text or await original_text(
            self.store, original, self.text_lookup, resend.account, sender.readback
        )
        if text is None:
            await self._finish(resend, Move.SKIP, reason="content_unknown")
            return
        if (
            sender.readback is not None
            and resend.phone
            and await sender.readback.delivered(original, resend.phone)
        ):  # MTA's own fallback got it there, and no webhook told us
            await self._finish(resend, Move.CANCEL, reason="delivered_per_report")
            return
        if not await self._move(
            resend,
            Move.SEND,
            now=now,
            text=text,
            attempts=resend.attempts + 1,
        ):
            return  # cancelled meanwhile: a DELIVERED won the race
        payload = send_payload(
            resend,
            text,
            self.settings.fallback_imessage_tags,
            sender.longcode_id,
        )
        withdrawn: list[tuple[Move, str]] = []

        async def ready() -> bool:
            # Asked right before each attempt: a DELIVERED or STOP that came in while the
            # send waited for the rate limit or a Retry-After still calls it off.
            if stop := await called_off(self.store, resend, self.global_opt_outs):
                withdrawn.append(stop)
            return not withdrawn

        try:
            result = await sender.client.send(payload, request_id=resend.request_id, ready=ready)
        except SendWithdrawn:
            # Nothing went out: undo the double-delivery mark a DELIVERED set meanwhile.
            step, reason = withdrawn[0]
            await self._finish(resend, step, reason=reason, double_delivery=0)
        except MTARejected as exc:
            await self._finish(resend, Move.REJECT, reason=str(exc), mta_request_id=exc.request_id)
        except MTAOutcomeUnknown as exc:
            log.warning(
                "resend of %s: outcome unknown (%s); waiting for its webhook",
                original,
                exc,
                extra=log_fields(resend),
            )
            await self._reconcile(resend, reason=str(exc))
        except MTAUnavailable as exc:
            await self._unavailable(resend, exc)
        else:
            sent_at = self.clock()
            await self._finish(
                resend,
                Move.ACCEPTED,
                sent_at=sent_at,
                resend_message_id=result.message_id,
                mta_request_id=result.request_id,
            )
            self.metrics.resend_delay.observe(max(0.0, sent_at - resend.failed_at))

    async def _unavailable(self, resend: Resend, exc: Exception) -> None:
        # Nothing was sent: safe to try again later, a bounded number of times.
        attempts = resend.attempts + 1
        if attempts >= self.settings.max_attempts:
            await self._finish(resend, Move.GIVE_UP, reason=f"MTA unavailable: {exc}")
            return
        # The retry after this attempt: the project's one formula, jitter included, so
        # replicas whose sends failed together do not retry together.
        delay = backoff(
            attempts + 1, self.settings.retry_base_seconds, self.settings.retry_max_seconds
        )
        await self._move(
            resend,
            Move.RETRY,
            now=self.clock(),
            due_at=self.clock() + delay,
            reason=f"MTA unavailable: {exc}",
        )

    async def _reconcile(self, resend: Resend, reason: str) -> None:
        await self._move(
            resend,
            Move.RECONCILE,
            now=self.clock(),
            due_at=self.clock() + self.settings.fallback_reconcile_seconds,
            reason=reason,
        )

    async def _lost_mid_send(self, resend: Resend) -> None:
        log.warning(
            "resend of %s was in flight when its worker died; reconciling",
            resend.original_message_id,
            extra=log_fields(resend),
        )
        await self._reconcile(resend, reason="worker stopped during the send")

    async def _window_passed(self, resend: Resend) -> None:
        if self.settings.fallback_resend_unknown:
            await self._move(
                resend,
                Move.RESEND_UNANSWERED,
                now=self.clock(),
                due_at=self.clock(),
                reason="no webhook in the reconcile window: sending again",
            )
            return
        log.error(
            "resend of %s: no webhook within the reconcile window; an operator must"
            " decide (mta-receiver resends send|drop)",
            resend.original_message_id,
            extra=log_fields(resend),
        )
        await self._finish(resend, Move.ASK_OPERATOR, reason="no webhook after an unknown outcome")

    async def _move(self, resend: Resend, step: Move, *, now: float, **fields: object) -> bool:
        return await move(
            self.resends,
            resend.original_message_id,
            step,
            now=now,
            account=resend.account,
            **fields,
        )

    async def _finish(self, resend: Resend, step: Move, **fields: object) -> None:
        state = MOVES[step].to
        if await self._move(resend, step, now=self.clock(), **fields):
            self.metrics.resends.labels(state, resend.account).inc()
            reason = fields.get("reason")
            log.info(
                "resend of %s: %s%s",
                resend.original_message_id,
                state,
                f" ({reason})" if reason else "",
                extra=log_fields(resend),
            )


def log_fields(resend: Resend) -> dict[str, str]:
    """A line's fields naming the resend's account: message ids repeat across accounts,
    and ``resends send|drop`` needs ``--account`` when they do."""
    return {"account": resend.account}
