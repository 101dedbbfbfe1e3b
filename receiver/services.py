"""Building the MTA client and the outbox from settings (the app and the CLI share this)."""

from __future__ import annotations

from .errors import ConfigError
from .loader import load_object
from .metrics import Metrics
from .mta import MTAClient, SlidingWindowLimiter
from .outbox import Outbox, TextLookup
from .settings import Settings
from .store import Store


def mta_client(settings: Settings, metrics: Metrics) -> MTAClient:
    """The process's one MTA client; needs ``RECEIVER_MTA_API_KEY``."""
    if settings.mta_api_key is None:
        raise ConfigError("RECEIVER_MTA_API_KEY is not set: it is needed to call MTA")
    return MTAClient(
        settings.mta_api_key,
        SlidingWindowLimiter(settings.mta_send_rate),
        base_url=settings.mta_base_url,
        timeout=settings.mta_timeout,
        on_call=lambda endpoint, status: metrics.mta_calls.labels(endpoint, status).inc(),
        on_wait=metrics.rate_limit_wait.inc,
    )


def outbox(settings: Settings, store: Store, client: MTAClient, metrics: Metrics) -> Outbox:
    """The resend outbox, with the user's text lookup when one is configured."""
    lookup: TextLookup | None = None
    if settings.fallback_text_lookup:
        lookup = load_object(settings.fallback_text_lookup, "RECEIVER_FALLBACK_TEXT_LOOKUP")
    return Outbox(store, client, settings, metrics, text_lookup=lookup)
