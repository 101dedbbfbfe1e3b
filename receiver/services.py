"""Building the MTA client from settings (the app and the CLI share this); the fallback's
outbox is built by receiver/fallback/wiring.py."""

from __future__ import annotations

from .errors import ConfigError
from .metrics import Metrics
from .mta import Limiter, MTAClient, SlidingWindowLimiter
from .settings import Settings
from .store import Store


def mta_client(settings: Settings, metrics: Metrics, store: Store | None = None) -> MTAClient:
    """The process's one MTA client; needs ``RECEIVER_MTA_API_KEY``.

    When the store can share the send limit (PostgreSQL: every replica of the account,
    receiver/store/postgres/limiter.py) it does; otherwise this process is the only sender.
    """
    if settings.mta_api_key is None:
        raise ConfigError("RECEIVER_MTA_API_KEY is not set: it is needed to call MTA")
    return MTAClient(
        settings.mta_api_key,
        send_limiter(settings, store),
        base_url=settings.mta_base_url,
        timeout=settings.mta_timeout,
        on_call=lambda endpoint, status: metrics.mta_calls.labels(endpoint, status).inc(),
        on_wait=metrics.rate_limit_wait.inc,
    )


def send_limiter(settings: Settings, store: Store | None) -> Limiter:
    """The `Limiter` for ``POST /send``: the store's shared one when it has one, else in
    memory."""
    if settings.mta_api_key is not None and store is not None:
        shared = store.send_limiter(settings.mta_send_rate, settings.mta_api_key.reveal())
        if shared is not None:
            return shared
    return SlidingWindowLimiter(settings.mta_send_rate)
