"""The dashboard's pages and actions. Statuses of refusals live in `receiver.admin.app`.

Pages are GETs and change nothing; every change is a POST carrying the session's CSRF
token, answered by a 303 back to a page (so a reload never repeats an action).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ..fallback.policy import operator_drop, operator_resend
from ..logs import mask_number
from ..mta.events import DEFAULT_ACCOUNT
from ..mta.statuses import STATUS_NAMES
from ..store import MAX_ID, Store
from ..store.operator import EventFilter
from . import auth, charts, csrf, forms
from .render import page

log = logging.getLogger("receiver.admin")


class LoginRequired(Exception):
    """No operator session: log in first."""


class CsrfRejected(Exception):
    """The form did not carry this session's CSRF token."""


class Throttled(Exception):
    """Too many failed logins from this address; try again later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Dashboard:
    """Endpoints of ``/admin``, over the store's operator reads and actions."""

    def __init__(
        self,
        store: Store,
        views: Jinja2Templates,
        password: auth.Password,
        throttle: auth.LoginThrottle,
        clock: Callable[[], float],
        notify: Callable[[], None],
        redact: bool = True,
    ) -> None:
        self.redact = redact
        self.store = store
        self.views = views
        self.password = password
        self.throttle = throttle
        self.clock = clock
        self.notify = notify

    # --- session ---------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """The login page (it also starts the session that holds the CSRF token)."""
        return page(self.views, request, "login.html", next=_next(request, "next"))

    async def login(self, request: Request) -> Response:
        """Check the password; throttled per client address before it is even looked at.

        The form is read first: checking the throttle before an ``await`` and counting the
        failure after it let parallel requests all pass the check (many more guesses
        per window than the limit). Check and count now happen with no ``await`` between.
        """
        client = request.client.host if request.client else "unknown"
        fields = await self._checked_form(request)
        if (wait := self.throttle.retry_after(client)) is not None:
            log.warning("admin login throttled for %s", client)
            raise Throttled(wait)
        if not self.password.matches(fields.get("password", "")):
            self.throttle.failed(client)
            log.warning("admin login failed from %s", client)
            return page(
                self.views,
                request,
                "login.html",
                401,
                error="Wrong password.",
                next=_local(request, fields.get("next")),
            )
        self.throttle.succeeded(client)
        auth.log_in(request.session, self.password, self.clock())
        log.info("admin login from %s", client)
        return self._back(request, fields.get("next"))

    async def logout(self, request: Request) -> Response:
        """End the session."""
        await self._checked_form(request)
        request.session.clear()
        return RedirectResponse(f"{_base(request)}/login", 303)

    # --- pages -----------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        """Headline figures, charts, dead letters, resends awaiting a decision, latest
        events."""
        self._require_login(request)
        now = self.clock()
        span = request.query_params.get("range", "24h")
        span = span if span in charts.RANGES else "24h"
        hours = charts.RANGES[span]
        by_type, by_outcome = charts.webhook_charts(
            await self.store.operator.webhooks_per_hour((int(now) // 3600 - hours + 1) * 3600),
            now,
            hours,
        )
        return page(
            self.views,
            request,
            "overview.html",
            span=span,
            ranges=list(charts.RANGES),
            by_type=by_type,
            by_outcome=by_outcome,
            resends=charts.resend_rows(
                await self.store.operator.resend_outcomes(now - hours * 3600)
            ),
            headline=await self.store.operator.headline(now),
            by_account=await self.store.operator.by_account(now),
            dead=await self.store.operator.list_events(EventFilter(state="dead", limit=50)),
            unknown=await self.store.operator.awaiting_decision(50),
            events=await self.store.operator.list_events(EventFilter(limit=15)),
            backfill=await self.store.backfill.last_run(),
        )

    async def events(self, request: Request) -> Response:
        """Events with filters (type, state, status, number, message, time), newest first."""
        self._require_login(request)
        chosen = forms.filters(request.query_params)
        rows = await self.store.operator.list_events(chosen.query)
        full = len(rows) == chosen.query.limit  # a full page: there may be older events
        older = dict(chosen.values, before=str(rows[-1].id)) if full else None
        return page(
            self.views,
            request,
            "events.html",
            filters=chosen,
            events=rows,
            older=older,
            types=forms.TYPES,
            states=forms.STATES,
            statuses=[(c, n) for c, n in STATUS_NAMES.items() if c is not None],
        )

    async def event(self, request: Request) -> Response:
        """One event of any kind (quarantined, opt-in, test ...): its row, runs and body."""
        self._require_login(request)
        event_id = request.path_params["event_id"]
        row = None
        if event_id <= MAX_ID:  # a longer id can be no event's (and would overflow)
            found = await self.store.operator.list_events(
                EventFilter(before_id=event_id + 1, limit=1)
            )
            row = found[0] if found and found[0].id == event_id else None
        body = await self.store.operator.event_body(event_id) if row else None
        raw = body.raw if body else ""
        if row and self.redact:
            raw = mask_number(raw, row.phone)
        return page(
            self.views, request, "event.html", 200 if row else 404, e=row, body=body, raw=raw
        )

    async def confirm_drop(self, request: Request) -> Response:
        """Ask before dropping a resend: the person may then get no message at all."""
        self._require_login(request)
        original = request.path_params["message_id"]
        back = _next(request, "next")
        return page(
            self.views,
            request,
            "drop.html",
            original=original,
            account=_account(request),
            back=back,
        )

    async def timeline(self, request: Request) -> Response:
        """Everything about one message: statuses, duplicates, handler runs, its resend."""
        self._require_login(request)
        found = await self.store.operator.message_timeline(
            request.path_params["message_id"], _account(request)
        )
        return page(
            self.views, request, "timeline.html", 200 if found.found else 404, timeline=found
        )

    # --- actions ---------------------------------------------------------------------

    async def retry(self, request: Request) -> Response:
        """Put a dead letter back in the queue."""
        event_id = request.path_params["event_id"]
        return await self._act(
            request,
            lambda now: self._retry(event_id, now),
            f"Event {event_id} is pending again.",
            f"Event {event_id} is not a dead letter (any more).",
            wake=True,
        )

    async def resend(self, request: Request) -> Response:
        """Send an ``unknown`` resend now."""
        original, account = request.path_params["message_id"], _account(request)
        return await self._act(
            request,
            lambda now: operator_resend(self.store.resends, original, now, account),
            f"The resend of message {original} is scheduled now.",
            f"The resend of message {original} is not awaiting a decision (any more).",
        )

    async def drop(self, request: Request) -> Response:
        """Never send an ``unknown`` resend."""
        original, account = request.path_params["message_id"], _account(request)
        return await self._act(
            request,
            lambda now: operator_drop(self.store.resends, original, now, account),
            f"The resend of message {original} is dropped.",
            f"The resend of message {original} is not awaiting a decision (any more).",
        )

    # --- helpers ---------------------------------------------------------------------

    async def _retry(self, event_id: int, now: float) -> bool:
        # A longer id can be no event's (and would overflow the database's integer).
        return event_id <= MAX_ID and await self.store.maintenance.retry_dead_letter(event_id, now)

    async def _act(
        self,
        request: Request,
        action: Callable[[float], Awaitable[bool]],
        done: str,
        refused: str,
        wake: bool = False,
    ) -> Response:
        self._require_login(request)
        fields = await self._checked_form(request)
        changed = await action(self.clock())
        log.info("admin %s %s: %s", request.method, request.url.path, changed)
        if changed and wake:
            self.notify()
        request.session["flash"] = done if changed else refused
        return self._back(request, fields.get("next"))

    def _require_login(self, request: Request) -> None:
        if not auth.logged_in(request.session, self.password, self.clock()):
            raise LoginRequired

    async def _checked_form(self, request: Request) -> dict[str, str]:
        fields = await forms.form(request)
        if not csrf.valid(request.session, fields.get(csrf.FIELD)):
            log.warning("admin %s %s: CSRF token rejected", request.method, request.url.path)
            raise CsrfRejected
        return fields

    def _back(self, request: Request, target: str | None) -> Response:
        return RedirectResponse(_local(request, target), 303)


def _account(request: Request) -> str:
    """The account of the message a page or action is about: ``?account=NAME``, the
    default account's without it (message ids are per account)."""
    return request.query_params.get("account") or DEFAULT_ACCOUNT


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _next(request: Request, name: str) -> str:
    return _local(request, request.query_params.get(name))


def _local(request: Request, target: str | None) -> str:
    """``target`` when it is a page of the dashboard, else the overview: never an open
    redirect (``//evil.example`` and ``/admin/../x`` are refused)."""
    base = _base(request)
    if target and target.startswith(f"{base}/") and "//" not in target and ".." not in target:
        return target
    return f"{base}/"
