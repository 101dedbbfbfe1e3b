"""The MTA API client: one ``httpx.AsyncClient`` per process, made in the lifespan.

``send`` is the only call that costs money and reaches people, so it is careful: every
attempt waits for the rate limiter, then asks the caller's ``ready`` check (a DELIVERED
may have come in while it waited: `SendWithdrawn`, nothing sent); 429 honours
``Retry-After``; MTA's own 5xx answers and failures to connect are retried with backoff
and jitter (nothing was sent). What may have reached MTA is never retried here and raises
`MTAOutcomeUnknown`: a timeout or dropped connection after the request went out, a 5xx
that is not MTA's own error body (a gateway's 502/504), and a 409 (a repeat of this
request id, reported by some integrations, docs/mta.md). A 401/403 on a send is
`MTAUnavailable` (a key being fixed or rotated: try later), not final. One
``X-Request-Id`` per logical send, the same on each retry.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # settings imports this package for Rate
    from ..settings import Secret
from ..backoff import backoff
from . import DEFAULT_BASE_URL
from .errors import MTAError, MTAOutcomeUnknown, MTARejected, MTAUnavailable, SendWithdrawn
from .ratelimit import Limiter

log = logging.getLogger("receiver.mta")

# Failures before any byte of the request left: safe to try again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_ID = re.compile(r"/\d+(?=/|$)")
MAX_PAUSE_SECONDS = 300.0
"""The longest pause a ``Retry-After`` can impose on sends."""
MAX_RESET_PAUSE_SECONDS = 60.0
"""The longest pause a ``RateLimit-Reset`` can impose: MTA says milliseconds, common
middlewares send seconds or an epoch, so whatever it says is clamped to 0-60 s."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """MTA's answer to a send (``data`` wrapper or not, docs/mta.md "Sending")."""

    message_id: str | None
    total_sent: int | None
    request_id: str
    raw: dict[str, Any]


class MTAClient:
    """Calls MTA's v3 API."""

    def __init__(
        self,
        api_key: Secret,
        limiter: Limiter,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_retries: int = 4,
        retry_base: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_call: Callable[[str, str], None] = lambda endpoint, outcome: None,
        on_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.limiter = limiter
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.sleep = sleep
        self.on_call = on_call
        self.on_wait = on_wait
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key.reveal()}"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def send(
        self,
        payload: dict[str, Any],
        request_id: str,
        ready: Callable[[], Awaitable[bool]] | None = None,
    ) -> SendResult:
        """``POST /send``; see the module docstring for what is retried. ``ready`` is
        asked before every attempt, right before the request leaves."""
        response = await self._call(
            "POST", "send", json=payload, request_id=request_id, send=True, ready=ready
        )
        body = _json(response)
        data = _data(body)
        message_id = data.get("messageId")
        total = data.get("totalSent")
        return SendResult(
            message_id=str(message_id) if message_id is not None else None,
            total_sent=total if isinstance(total, int) else None,
            request_id=request_id,
            raw=body,
        )

    async def verify_key(self) -> bool:
        """``GET /auth/verify-api-key``: whether MTA accepts our key."""
        try:
            await self._call("GET", "auth/verify-api-key")
        except MTARejected as exc:
            if exc.http_code in (401, 403):
                return False
            raise
        return True

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Any other API call (webhook management), with the same retry rules; the
        answer's ``data`` object (or the whole answer when it has none)."""
        return _data(_json(await self._call(method, path.lstrip("/"), **kwargs)))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        request_id: str | None = None,
        send: bool = False,
        ready: Callable[[], Awaitable[bool]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {"X-Request-Id": request_id} if request_id else {}
        # Ids in the path (PATCH /webhooks/11) would make one label value per id.
        endpoint = f"{method} " + _ID.sub("/{id}", f"/{path}")
        for attempt in range(1, self.max_retries + 2):
            told_to_wait = 0.0  # a 429's Retry-After, for calls the limiter does not gate
            try:
                if send:
                    self.on_wait(await self.limiter.acquire())
                go = ready is None or await ready()
            except Exception as exc:  # the shared limit's database, say: nothing left yet
                raise MTAUnavailable(
                    f"not sent: {type(exc).__name__}: {exc}", request_id=request_id
                ) from exc
            if not go:
                raise SendWithdrawn("called off before it was sent", request_id=request_id)
            try:
                response = await self.http.request(method, path, headers=headers, **kwargs)
            except _NOT_SENT as exc:
                self.on_call(endpoint, "connect_error")
                error: MTAError = MTAUnavailable(
                    f"cannot reach MTA: {exc!r}", request_id=request_id
                )
            except httpx.TransportError as exc:
                self.on_call(endpoint, "unknown")
                raise MTAOutcomeUnknown(
                    f"no answer from MTA after sending ({type(exc).__name__}); the request"
                    " may have been processed",
                    request_id=request_id,
                ) from exc
            else:
                self.on_call(endpoint, str(response.status_code))
                if response.status_code < 300:
                    if send:  # reads count against MTA's general limit, not /send's
                        self._respect_remaining(response)
                    return response
                code, body = response.status_code, _json(response)
                error = MTAError.from_response(code, body, response.headers.get("x-request-id"))
                if send and (code == 409 or (code >= 500 and not _is_mta_error(body))):
                    raise MTAOutcomeUnknown(
                        f"{error}; the send may have been processed", request_id=request_id
                    )
                if send and code in (401, 403):
                    raise MTAUnavailable(
                        f"{error}: MTA refused the API key (check RECEIVER_MTA_API_KEY)",
                        http_code=code,
                        request_id=error.request_id,
                        body=error.body,
                    )
                if response.status_code == 429:
                    if send:
                        self.limiter.pause(_retry_after(response))
                    else:
                        told_to_wait = _retry_after(response)
                elif response.status_code < 500:
                    raise MTARejected(
                        str(error),
                        http_code=error.http_code,
                        request_id=error.request_id,
                        body=error.body,
                    )
                else:
                    error = MTAUnavailable(
                        str(error),
                        http_code=error.http_code,
                        request_id=error.request_id,
                        body=error.body,
                    )
            if attempt > self.max_retries:
                break
            delay = max(backoff(attempt, self.retry_base), told_to_wait)
            log.warning("MTA %s failed (%s); retry %d in %.1fs", endpoint, error, attempt, delay)
            await self.sleep(delay)
        if isinstance(error, MTAUnavailable):
            raise error
        raise MTAUnavailable(str(error), http_code=error.http_code, request_id=error.request_id)

    def _respect_remaining(self, response: httpx.Response) -> None:
        # Remaining 0 with a Reset (ms, docs/mta.md "Limits and errors"): wait it out.
        remaining = rate_limit_header(response.headers, "Remaining")
        pause = reset_pause(response.headers)
        if remaining == "0" and pause is not None:
            self.limiter.pause(pause)


def rate_limit_header(headers: httpx.Headers, name: str) -> str | None:
    """``RateLimit-<name>``, else ``X-RateLimit-<name>``: MTA documents both families
    (docs/mta.md, "Limits and errors"); httpx headers are case-insensitive."""
    value = headers.get(f"ratelimit-{name}")
    if value is None or not value.strip():
        value = headers.get(f"x-ratelimit-{name}")
    return value.strip() if value is not None else None


def reset_pause(headers: httpx.Headers) -> float | None:
    """Seconds until the window resets, from a Reset header read as milliseconds and
    clamped to 0-60 s; None without a readable one."""
    reset = rate_limit_header(headers, "Reset")
    try:
        millis = float(reset) if reset is not None else None
    except ValueError:
        return None
    if millis is None or millis != millis:  # absent or NaN
        return None
    return max(0.0, min(millis / 1000, MAX_RESET_PAUSE_SECONDS))


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, min(float(value), MAX_PAUSE_SECONDS))
    except ValueError:
        pause = reset_pause(response.headers)
        return pause if pause is not None else 15.0  # MTA's send window


def _is_mta_error(body: dict[str, Any]) -> bool:
    """MTA's own error body (docs/mta.md): ``{httpCode, message, ..., requestId}``."""
    return "httpCode" in body or "requestId" in body


def _data(body: dict[str, Any]) -> dict[str, Any]:
    """MTA wraps some answers in ``{"data": {...}}`` (docs/mta.md): the inner object, if any."""
    inner = body.get("data")
    return inner if isinstance(inner, dict) else body


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
