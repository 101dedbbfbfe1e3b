"""The fake MTA API v3 as a Starlette app: ``/v3/send``, auth, webhook management,
``/sent-messages`` and ``/deliveries``.

Behaviour follows MTA's documentation as docs/mta.md records it (tests/test_fake_conformance.py
holds it to fixtures written from those docs); test-only controls live in ``control.py``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .autoplay import play_to_registrations
from .control import control_routes
from .deliveries import date_filter
from .faults import drop, hold
from .records import Fault
from .responses import mta_error, new_request_id
from .state import FakeMTA
from .validate import send_problem, webhook_problem

__all__ = ["PREFIX", "create_fake_mta"]

PREFIX = "/v3"  # docs/mta.md: base URL https://api.mobile-text-alerts.com/v3
DEFAULT_PAGE_SIZE = 25  # docs/mta.md: a parameterless list answers pageSize 25
MAX_PAGE_SIZE = 100
TOO_MANY = "Too many requests, please try again later."


async def _arrive(fake: FakeMTA, request: Request) -> Any:
    """Read, parse and log the request; the parsed JSON body or None."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    fake.record_request(
        request.method, request.url.path, request.url.query, dict(request.headers), body
    )
    return body


class _Api:
    """Endpoints bound to one :class:`FakeMTA`."""

    def __init__(self, fake: FakeMTA) -> None:
        self.fake = fake

    def _authorized(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        # Every key compared, so the time taken does not tell which one nearly matched.
        matches = [hmac.compare_digest(key.encode(), k.encode()) for k in self.fake.api_keys]
        return key if any(matches) else None

    async def send(self, request: Request) -> Response:
        """POST /send: auth, rate limit, queued fault, validation, then accept."""
        rid, fake = new_request_id(), self.fake
        body = await _arrive(fake, request)
        key = self._authorized(request)
        if key is None:
            return mta_error(401, "Invalid API key", rid)
        decision = fake.check_rate(key)
        limits = decision.headers()
        if not decision.allowed:
            return mta_error(429, TOO_MANY, rid, limits)
        fault = fake.take_fault()
        if fault is not None:
            early = await self._fault(fault, request, rid, limits)
            if early is not None:
                return early
        problem = send_problem(body, fake.max_sms_length)
        if problem is not None:
            return mta_error(400, problem, rid, limits)
        record = fake.record_send(
            body, dict(request.headers), request.headers.get("x-request-id"), key
        )
        if record is None:
            return mta_error(409, "Duplicate X-Request-Id", rid, limits)
        if fault is not None and fault.kind == "drop-after-send":
            return await drop(request)
        data = {
            "messageId": record.message_id,
            "totalSent": len(body["subscribers"]),
            "totalFailedInternationalRecipients": 0,
            "message": "Message Sent",
        }
        # docs/mta.md: the answer may or may not be wrapped in {"success", "data"}.
        payload = {"success": True, "data": data} if fake.wrap_send_response else data
        steps = tuple(fake.auto_timeline)
        task = BackgroundTask(play_to_registrations, fake, record, steps) if steps else None
        return JSONResponse(payload, headers={**limits, "X-Request-ID": rid}, background=task)

    async def _fault(
        self, fault: Fault, request: Request, rid: str, limits: dict[str, str]
    ) -> Response | None:
        """Show a queued fault before the send is accepted; None to go on normally."""
        if fault.kind == "429":
            return mta_error(429, TOO_MANY, rid, {**limits, "Retry-After": str(fault.retry_after)})
        if fault.kind == "500":
            return mta_error(500, "Internal server error", rid, limits)
        if fault.kind == "drop":
            return await drop(request)
        if fault.kind == "hang":
            await hold(self.fake, request, self.fake.hang_limit, until_disconnect=True)
            return await drop(request)
        if fault.kind == "slow":
            # The send goes through after the delay even if the client gave up meanwhile.
            await hold(self.fake, request, fault.delay, until_disconnect=False)
        return None

    def _gate(self, request: Request, rid: str) -> tuple[dict[str, str], Response | None, str]:
        """Auth and the general rate limit (30/min, docs/mta.md "Limits and errors") of
        any endpoint but ``/send``: the answer's headers, a refusal if any, and the
        caller's key (its account)."""
        key = self._authorized(request)
        if key is None:
            return {}, mta_error(401, "Invalid API key", rid), ""
        decision = self.fake.check_rate(key, general=True)
        headers = {**decision.headers(), "X-Request-ID": rid}
        if not decision.allowed:
            return headers, mta_error(429, TOO_MANY, rid, decision.headers()), key
        return headers, None, key

    async def verify_key(self, request: Request) -> Response:
        """GET /auth/verify-api-key."""
        rid = new_request_id()
        await _arrive(self.fake, request)
        headers, refused, _ = self._gate(request, rid)
        if refused is not None:
            return refused
        return JSONResponse({"message": "API key is valid"}, headers=headers)

    async def sent_message(self, request: Request) -> Response:
        """GET /sent-messages/{id} and /sent-messages/{id}/delivery-report."""
        rid, fake = new_request_id(), self.fake
        await _arrive(fake, request)
        headers, refused, key = self._gate(request, rid)
        if refused is not None:
            return refused
        message_id = int(request.path_params["message_id"])
        report = request.url.path.endswith("/delivery-report")
        read = fake.sent.report if report else fake.sent.message
        data = read(message_id, key)
        if data is None:
            return mta_error(404, f"Outbound message {message_id} not found", rid, headers)
        # docs/mta.md: the v3 reference envelope {success, error, message, data}.
        body = {"success": True, "error": None, "message": "OK", "data": data}
        return JSONResponse(body, headers=headers)

    async def deliveries(self, request: Request) -> Response:
        """GET /deliveries: the latest status per message, date-filtered and paged."""
        rid, fake = new_request_id(), self.fake
        await _arrive(fake, request)
        headers, refused, key = self._gate(request, rid)
        if refused is not None:
            return refused
        query = request.query_params
        try:
            start = date_filter(query.get("filters[startDate]"), end=False)
            end = date_filter(query.get("filters[endDate]"), end=True)
        except ValueError:
            return mta_error(400, "filters[startDate]/filters[endDate] must be dates", rid)
        return self._list(request, fake.sent.deliveries(start, end, key), headers)

    async def webhooks(self, request: Request) -> Response:
        """POST/GET /webhooks and PATCH/DELETE /webhooks/{id}."""
        rid, fake = new_request_id(), self.fake
        body = await _arrive(fake, request)
        ok_headers, refused, key = self._gate(request, rid)
        if refused is not None:
            return refused
        if request.method == "GET":
            own = [w.public() for w in fake.webhooks if w.owner == key]
            return self._list(request, own, ok_headers)
        if request.method == "POST":
            problem = webhook_problem(body, partial=False)
            if problem is not None:
                return mta_error(400, problem, rid)
            hook = fake.add_webhook(body["event"], body["url"], body.get("secret"), body, key)
            return JSONResponse(
                {"message": "Webhook created", "data": hook.public()}, headers=ok_headers
            )
        webhook_id = int(request.path_params["webhook_id"])
        if request.method == "PATCH":
            problem = webhook_problem(body, partial=True)
            if problem is not None:
                return mta_error(400, problem, rid)
            updated = fake.update_webhook(webhook_id, body, key)
            if updated is None:
                return mta_error(404, f"Webhook {webhook_id} not found", rid)
            return JSONResponse(
                {"message": "Webhook updated", "data": updated.public()}, headers=ok_headers
            )
        if not fake.delete_webhook(webhook_id, key):
            return mta_error(404, f"Webhook {webhook_id} not found", rid)
        # docs/mta.md: DELETE answers 200 with a message, or 204.
        if fake.delete_returns_204:
            return Response(status_code=204, headers=ok_headers)
        return JSONResponse({"message": "Webhook deleted"}, headers=ok_headers)

    def _list(
        self, request: Request, rows: list[dict[str, Any]], headers: dict[str, str]
    ) -> Response:
        """One page of ``rows``: ``page`` counts from ``first_page`` (0 as documented),
        ``pageSize`` defaults to 25, and ``page``/``pageSize``/``total`` are echoed
        (docs/mta.md, "Lists and paging")."""
        first = self.fake.first_page
        try:
            page = int(request.query_params.get("page", str(first)))
            size = int(request.query_params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return mta_error(400, "page and pageSize must be integers", headers["X-Request-ID"])
        page, size = max(first, page), min(MAX_PAGE_SIZE, max(1, size))
        start = (page - first) * size
        data = {"rows": rows[start : start + size], "page": page, "pageSize": size}
        data["total"] = len(rows)
        return JSONResponse({"message": "OK", "data": data}, headers=headers)

    async def not_found(self, request: Request) -> Response:
        """Any other path under the API prefix."""
        await _arrive(self.fake, request)
        return mta_error(404, f"Cannot {request.method} {request.url.path}", new_request_id())


def create_fake_mta(state: FakeMTA | None = None) -> Starlette:
    """Build the fake MTA app around ``state`` (a fresh :class:`FakeMTA` if None).

    The API lives under ``/v3``; test controls under ``/_fake``. ``app.state.fake`` is
    the :class:`FakeMTA`.
    """
    fake = state if state is not None else FakeMTA()
    api = _Api(fake)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        fake.release_hangs()

    routes = [
        Route(f"{PREFIX}/send", api.send, methods=["POST"]),
        Route(f"{PREFIX}/auth/verify-api-key", api.verify_key, methods=["GET"]),
        Route(f"{PREFIX}/webhooks", api.webhooks, methods=["GET", "POST"]),
        Route(f"{PREFIX}/webhooks/{{webhook_id:int}}", api.webhooks, methods=["PATCH", "DELETE"]),
        Route(f"{PREFIX}/sent-messages/{{message_id:int}}", api.sent_message, methods=["GET"]),
        Route(f"{PREFIX}/deliveries", api.deliveries, methods=["GET"]),
        Route(
            f"{PREFIX}/sent-messages/{{message_id:int}}/delivery-report",
            api.sent_message,
            methods=["GET"],
        ),
        *control_routes(fake),
        Route(f"{PREFIX}/{{path:path}}", api.not_found, methods=["GET", "POST", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.fake = fake
    return app
