"""mta-receiver: verified, durable, deduplicated Mobile Text Alerts webhooks.

The public API: build a `Registry` of ``async def handler(event, ctx)`` functions and
name its module in ``RECEIVER_HANDLERS``.
"""

from __future__ import annotations

from .dispatch.context import Context
from .dispatch.registry import Registry
from .errors import ConfigError, ReceiverError, RetryLater
from .logs import label, redact_phone
from .mta.events import Event
from .settings import Secret, Settings
from .store import MessageState
from .web.verify import sign

__all__ = [
    "ConfigError",
    "Context",
    "Event",
    "MessageState",
    "ReceiverError",
    "Registry",
    "RetryLater",
    "Secret",
    "Settings",
    "create_app",
    "label",
    "redact_phone",
    "sign",
]


def __getattr__(name: str) -> object:
    # create_app pulls in Starlette and the store; handler modules importing
    # `receiver` for Registry should not pay for that.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
