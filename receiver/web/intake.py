"""``POST /webhooks/mta[/ACCOUNT]``: verify, store durably, answer. A lean raw-ASGI endpoint.

This path is the hot one (MTA retries at most twice, and answers must be fast), so it
skips the router and request objects: read the body up to the limit, verify the raw bytes,
parse, commit through the store's group-committing writer, answer. Nothing here raises
into the server: every outcome maps to a status in `answers.STATUS`.

Each account has its own path (`webhook_path`) and verifies with its own secrets only,
so a webhook is credited to the account whose path it came to (docs/accounts.md).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from ..errors import StoreError, VerificationError
from ..logs import redact_phone
from ..metrics import Metrics
from ..mta.events import DEFAULT_ACCOUNT, event_type
from ..settings import Settings
from ..store import QUARANTINED, Incoming, IngestResult, Store
from .answers import UNREAD, ClientGone, answer, read_body
from .incoming import incoming_from
from .netpolicy import AllowList
from .verify import Verifier

log = logging.getLogger("receiver.intake")

WEBHOOK_PATH = "/webhooks/mta"
"""The default account's path; every other account's is below it (`webhook_path`)."""


def webhook_path(account: str) -> str:
    """The path MTA posts ``account``'s webhooks to."""
    return WEBHOOK_PATH if account == DEFAULT_ACCOUNT else f"{WEBHOOK_PATH}/{account}"


class Intake:
    """The ASGI app of the webhook paths, one per account, each with its own `Verifier`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        on_accepted: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Path -> (account, its verifier), built once: an exact match, so a trailing slash,
        # '..', upper case or any name not configured finds nothing.
        self.routes = {
            webhook_path(name): (name, Verifier(account.webhook_secrets))
            for name, account in settings.accounts.items()
        }
        self.allow_list = AllowList.from_settings(settings.webhook_allow_networks)
        self.store = store
        self.metrics = metrics
        self.limit = settings.max_body_bytes
        self.redact = settings.redact
        self.country = settings.default_country_code
        self.on_accepted = on_accepted
        self.clock = clock
        self._received = functools.cache(self.metrics.received.labels)
        self.waiting = 0
        """Authentic webhooks waiting for their commit right now."""
        self._crowd = 0  # sum over webhooks since the worker last looked of `waiting`
        self._arrivals = 0
        metrics.webhooks_waiting.set_function(lambda: self.waiting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_list is not None and not self.allow_list.allows(_client(scope)):
            await self._reject(scope, send, "source_not_allowed")
            return
        # After the allow-list: a source outside it cannot probe which accounts exist.
        route = self.routes.get(scope["path"])
        if route is None:
            await self._reject(scope, send, "unknown_account")
            return
        account, verifier = route
        if scope["method"] != "POST":
            await answer(send, "method_not_allowed", extra=[(b"allow", b"POST")])
            return
        signature = None
        declared = None
        for name, value in scope["headers"]:
            if name == b"x-signature":
                # Several are ambiguous: b"" makes them malformed_signature.
                signature = value if signature is None else b""
            elif name == b"content-length":
                declared = value
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._reject(scope, send, "too_large", account)
            return
        try:
            body = await read_body(receive, self.limit)
        except ClientGone:
            return
        if body is None:
            await self._reject(scope, send, "too_large", account)
            return
        try:
            secret_index = verifier.verify(body, signature)
        except VerificationError as exc:
            await self._reject(scope, send, exc.reason, account)
            return
        incoming = self._incoming(scope, body, secret_index, account)
        self.waiting += 1
        self._crowd += self.waiting
        self._arrivals += 1
        try:
            result = await self.store.ingest(incoming)
        except Exception as exc:
            # Untranslated driver errors too: not committed, so a 503, never a 500.
            log.error(
                "webhook not stored, answered 503 for MTA to retry: %s",
                exc,
                exc_info=not isinstance(exc, StoreError),
                extra={
                    "client": _client(scope),
                    "account": account,
                    "outcome": "store_unavailable",
                    "request_id": _request_id(scope),
                },
            )
            await answer(send, "store_unavailable", extra=[(b"retry-after", b"5")])
            return
        finally:
            self.waiting -= 1
        await self._accepted(scope, send, incoming, result)

    def crowd(self) -> float:
        """How many webhooks waited, on average, with each one that arrived since the
        last call (0 when none arrived): high only under a sustained flood.

        The worker asks this, not `waiting`: its own writes commit together with the
        webhooks, so at the moment it looks, a commit has just answered them all; and
        a peak also comes from its own bursts at moderate rates.
        """
        crowd = self._crowd / self._arrivals if self._arrivals else 0.0
        self._crowd = self._arrivals = 0
        return crowd

    def _incoming(self, scope: Scope, body: bytes, secret_index: int, account: str) -> Incoming:
        hinted = _hinted_type(scope["query_string"])
        return incoming_from(body, self.clock(), secret_index, hinted, self.country, account)

    async def _accepted(
        self, scope: Scope, send: Send, incoming: Incoming, result: IngestResult
    ) -> None:
        if incoming.state == QUARANTINED:
            self.metrics.quarantined.labels(incoming.error, incoming.account).inc()
            log.warning(
                "authentic webhook quarantined: %s",
                incoming.error,
                extra={
                    "event_id": result.event_id,
                    "account": incoming.account,
                    "outcome": "quarantined",
                    "request_id": _request_id(scope),
                },
            )
            await answer(send, "quarantined", event_id=result.event_id)
        elif result.duplicate:
            self.metrics.duplicates.labels(incoming.type, incoming.account).inc()
            await answer(send, "duplicate", event_id=result.event_id)
        else:
            self._received(incoming.type, incoming.account).inc()
            self.on_accepted()
            await answer(send, "accepted", event_id=result.event_id)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "webhook accepted",
                    extra={
                        "event_id": result.event_id,
                        "event": incoming.name,
                        "account": incoming.account,
                        "message_id": incoming.message_id,
                        "outcome": "accepted",
                        "phone": redact_phone(incoming.phone, self.redact),
                        "request_id": _request_id(scope),
                    },
                )

    async def _reject(self, scope: Scope, send: Send, reason: str, account: str = "") -> None:
        # account "": refused before the route named one (source_not_allowed, unknown_account)
        self.metrics.rejected.labels(reason, account).inc()
        log.warning(
            "webhook rejected: %s",
            reason,
            extra={
                "client": _client(scope),
                # Whose path it came to: a bad_signature names the registration to fix.
                "account": account or None,
                "outcome": reason,
                "request_id": _request_id(scope),
            },
        )
        # After a 413 or 404 the body is never read: close instead of draining it.
        await answer(send, reason, close=reason in UNREAD)


def _hinted_type(query: bytes) -> str | None:
    if not query:
        return None
    if query.startswith(b"event=") and b"&" not in query and b"%" not in query:
        return event_type(query[6:].decode("latin-1"))  # the URL we told operators to use
    values = parse_qs(query.decode("latin-1")).get("event")
    return event_type(values[0]) if values else None


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id``, else a fresh one: only log lines of failures (and
    debug lines) pay for it, never the accepted path."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and value:
            # Bounded and printable: the header is the sender's, and ends up in our logs.
            return str(value[:64].decode("ascii", "replace"))
    return uuid.uuid4().hex[:16]


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None
