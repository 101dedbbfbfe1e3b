"""A fake Mobile Text Alerts API v3: a real HTTP server for tests and demos.

Build it with :func:`create_fake_mta`, drive it through a :class:`FakeMTA`, run it with
:func:`running_fake_mta` (a thread) or ``python -m receiver.fake_mta`` (a process), and
play webhook timelines to a receiver with :func:`play_timeline`.
"""

from .app import PREFIX, create_fake_mta
from .cli import main
from .inbound import opt_in_event, play_inbound, reply_event
from .records import Fault, FaultKind, RecordedRequest, SendRecord, Webhook, WebhookDelivery
from .server import running_fake_mta, running_server
from .state import FakeMTA
from .timeline import (
    DeliveryResult,
    Status,
    TimelineMessage,
    WebhookEvent,
    event_url,
    mta_fallback,
    play_timeline,
    sign,
    timeline_events,
)

__all__ = [
    "PREFIX",
    "DeliveryResult",
    "FakeMTA",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "SendRecord",
    "Status",
    "TimelineMessage",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "create_fake_mta",
    "event_url",
    "main",
    "mta_fallback",
    "opt_in_event",
    "play_inbound",
    "play_timeline",
    "reply_event",
    "running_fake_mta",
    "running_server",
    "sign",
    "timeline_events",
]
