"""Values the fake MTA records and serves: requests, sends, webhooks, faults, deliveries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .timeline import DeliveryResult

__all__ = [
    "FAULT_KINDS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_OPTIONS",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "SendRecord",
    "Webhook",
    "WebhookDelivery",
]

FaultKind = Literal["429", "500", "slow", "hang", "drop", "drop-after-send"]
"""Faults ``/send`` can be told to show; ``drop-after-send`` records the send, then drops."""
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

# docs/mta.md "Webhooks MTA sends to us": the four event types a registration can name.
WEBHOOK_EVENTS = frozenset({"message-reply", "delivery-status", "message-send", "number-opt-in"})
# docs/mta.md "Webhook registrations": optional registration fields, with the defaults the
# fake assumes (the example register answer shows maxThroughputPerMinute 600; the rest are
# unknown).
WEBHOOK_OPTIONS: Mapping[str, Any] = {
    "alertEmail": None,
    "sendAlertEmail": False,
    "skipErrors": False,
    "skipErrorCodes": [],
    "retryOnError": False,
    "maxThroughputPerMinute": 600,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued fault for ``/send``; ``delay`` is for ``slow``, ``retry_after`` for 429."""

    kind: FaultKind
    delay: float = 1.0
    retry_after: int = 1


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived; headers are lower-cased, ``json`` is None if unparsable."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    json: Any
    at: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for ``GET /_fake/requests``."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "json": self.json,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class SendRecord:
    """An accepted ``POST /send``: its id, body, headers and the client's X-Request-Id."""

    message_id: int
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    request_id: str | None
    at: float
    api_key: str = field(default="", repr=False)  # whose account sent it


@dataclass(slots=True)
class Webhook:
    """A webhook registration; the secret stays out of reprs and answers (docs/mta.md)."""

    id: int
    event: str
    url: str
    secret: str | None = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    owner: str = field(default="", repr=False)  # the API key of the account it belongs to

    def public(self) -> dict[str, Any]:
        """The registration as MTA shows it: everything but the secret."""
        shown = {"id": self.id, "event": self.event, "url": self.url, **self.options}
        return {**shown, "createdAt": self.created_at}

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Apply a PATCH body: event, url, secret and the known options."""
        self.event = str(changes.get("event", self.event))
        self.url = str(changes.get("url", self.url))
        self.secret = changes.get("secret", self.secret)
        self.options.update({k: v for k, v in changes.items() if k in WEBHOOK_OPTIONS})

    def copy(self) -> Webhook:
        """An independent copy, safe to hand to another thread."""
        return Webhook(
            self.id,
            self.event,
            self.url,
            self.secret,
            dict(self.options),
            self.created_at,
            self.owner,
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A webhook the fake sent to a registration on its own (auto timeline)."""

    webhook_id: int
    message_id: int
    result: DeliveryResult
