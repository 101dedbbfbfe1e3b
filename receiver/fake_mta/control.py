"""``/_fake`` routes: drive and inspect the fake over HTTP (for demos and other processes).

- ``POST /_fake/faults`` ``{"kind", "count"=1, "delay"=1.0, "retryAfter"=1}`` queues faults
  for ``/v3/send``; ``DELETE /_fake/faults`` clears them.
- ``GET /_fake/requests`` and ``GET /_fake/sends`` list what arrived.
- ``POST /_fake/timeline`` ``{"messageId", "steps": [3, 4]}`` plays that send's timeline
  to the registered webhooks, in the background.
- ``POST /_fake/reply`` ``{"fromNumber", "toNumber", "message", "replyId"?, "spelling"?}``
  and ``POST /_fake/opt-in`` ``{"number", "optInType"?}`` play an inbound webhook to the
  registrations of its type, in the background.
- ``POST /_fake/reset`` forgets requests, sends, faults and rate-limit history.

These requests are not logged in ``fake.requests``.
"""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .autoplay import play_to_registrations
from .inbound import opt_in_event, play_inbound, reply_event
from .records import FAULT_KINDS
from .state import FakeMTA

__all__ = ["control_routes"]


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def control_routes(fake: FakeMTA) -> list[Route]:
    """The ``/_fake`` routes for ``fake``."""

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            fake.clear_faults()
            return JSONResponse({"cleared": True})
        body = await _json(request)
        if body is None or body.get("kind") not in FAULT_KINDS:
            return _bad(f"kind must be one of {sorted(FAULT_KINDS)}")
        try:
            count = int(body.get("count", 1))
            delay = float(body.get("delay", 1.0))
            retry_after = int(body.get("retryAfter", 1))
        except (TypeError, ValueError):
            return _bad("count, delay and retryAfter must be numbers")
        fake.fail_next(count, body["kind"], delay=delay, retry_after=retry_after)
        return JSONResponse({"queued": count, "kind": body["kind"]})

    async def requests(request: Request) -> Response:
        return JSONResponse({"requests": [r.to_json() for r in fake.requests]})

    async def sends(request: Request) -> Response:
        rows = [
            {"messageId": s.message_id, "body": s.body, "requestId": s.request_id, "at": s.at}
            for s in fake.sends
        ]
        return JSONResponse({"sends": rows})

    async def timeline(request: Request) -> Response:
        body = await _json(request)
        steps = body.get("steps") if body is not None else None
        if (
            body is None
            or not isinstance(steps, list)
            or not all(isinstance(s, int) for s in steps)
        ):
            return _bad("expected {messageId, steps: [int, ...]}")
        record = next((s for s in fake.sends if s.message_id == body.get("messageId")), None)
        if record is None:
            return JSONResponse({"error": "no such messageId"}, status_code=404)
        task = BackgroundTask(play_to_registrations, fake, record, steps)
        return JSONResponse({"playing": len(steps)}, background=task)

    async def inbound(request: Request) -> Response:
        body = await _json(request)
        if body is None:
            return _bad("expected a JSON object")
        if request.url.path.endswith("/reply"):
            if not all(isinstance(body.get(k), str) for k in ("fromNumber", "toNumber", "message")):
                return _bad("expected {fromNumber, toNumber, message}")
            reply_id = body.get("replyId")
            event = reply_event(
                body["fromNumber"],
                body["toNumber"],
                body["message"],
                reply_id=reply_id if isinstance(reply_id, int) else None,
                spelling="aws" if body.get("spelling") == "aws" else "mta",
            )
        else:
            if not isinstance(body.get("number"), str):
                return _bad("expected {number, optInType}")
            event = opt_in_event(body["number"], str(body.get("optInType", "keyword")))
        return JSONResponse(
            {"playing": event.event}, background=BackgroundTask(play_inbound, fake, event)
        )

    async def outage(request: Request) -> Response:
        body = await _json(request)
        if body is None or not isinstance(body.get("down"), bool):
            return _bad("expected {down: true|false}")
        fake.webhooks_down = body["down"]
        return JSONResponse({"down": fake.webhooks_down})

    async def reset(request: Request) -> Response:
        fake.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_fake/faults", faults, methods=["POST", "DELETE"]),
        Route("/_fake/requests", requests, methods=["GET"]),
        Route("/_fake/sends", sends, methods=["GET"]),
        Route("/_fake/timeline", timeline, methods=["POST"]),
        Route("/_fake/reply", inbound, methods=["POST"]),
        Route("/_fake/opt-in", inbound, methods=["POST"]),
        Route("/_fake/outage", outage, methods=["POST"]),
        Route("/_fake/reset", reset, methods=["POST"]),
    ]
