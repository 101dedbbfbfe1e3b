"""Building the MTA client and the outbox from settings (the app and the CLI share this)."""

from __future__ import annotations

from .dispatch.loader import load_object
from .errors import ConfigError
from .fallback.content import TextLookup
from .fallback.outbox import Outbox
from .metrics import Metrics
from .mta import Limiter, MTAClient, SlidingWindowLimiter
from .mta.readback import ReadBack
from .settings import Settings
from .store import Store


def mta_client(settings: Settings, metrics: Metrics, store: Store | None = None) -> MTAClient:
    """The process's one MTA client; needs ``RECEIVER_MTA_API_KEY``.

    With the PostgreSQL store the send limit is shared by every replica of the account
    (receiver/store/postgres/limiter.py); otherwise this process is the only sender.
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
    """The `Limiter` for ``POST /send``: in PostgreSQL when the store is, else in memory."""
    if settings.mta_api_key is not None and store is not None and store.dialect == "postgres":
        from .store.postgres import PostgresStore
        from .store.postgres.limiter import PostgresLimiter, account_key

        if isinstance(store, PostgresStore):
            account = account_key(settings.mta_api_key.reveal())
            return PostgresLimiter(store, settings.mta_send_rate, account)
    return SlidingWindowLimiter(settings.mta_send_rate)


def outbox(settings: Settings, store: Store, client: MTAClient, metrics: Metrics) -> Outbox:
    """The resend outbox, with the user's text lookup when one is configured."""
    lookup: TextLookup | None = None
    if settings.fallback_text_lookup:
        lookup = load_object(settings.fallback_text_lookup, "RECEIVER_FALLBACK_TEXT_LOOKUP")
    readback = ReadBack(client, country=settings.default_country_code)
    return Outbox(store, client, settings, metrics, text_lookup=lookup, readback=readback)
