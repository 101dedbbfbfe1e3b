"""Building MTA clients from settings (the app and the CLI share this), one per account;
the fallback's outbox is built by receiver/fallback/wiring.py."""

from __future__ import annotations

from .accounts import Account
from .errors import ConfigError
from .metrics import Metrics
from .mta import Limiter, MTAClient, SlidingWindowLimiter
from .mta.events import DEFAULT_ACCOUNT
from .settings import Settings
from .store import Store


def mta_client(
    settings: Settings,
    metrics: Metrics,
    store: Store | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> MTAClient:
    """The MTA client of one account (its API key, its base URL, its send limit).

    When the store can share the send limit (PostgreSQL: every replica of the account,
    receiver/store/postgres/limiter.py) it does; otherwise this process is the only sender.
    """
    served = settings.account(account)
    if served.mta_api_key is None:
        where = (
            "RECEIVER_MTA_API_KEY is not set"
            if account == DEFAULT_ACCOUNT
            else f"account {account!r} has no mta_api_key in RECEIVER_ACCOUNTS_FILE"
        )
        raise ConfigError(f"{where}: it is needed to call MTA")
    return MTAClient(
        served.mta_api_key,
        send_limiter(settings, store, served),
        base_url=served.mta_base_url,
        timeout=settings.mta_timeout,
        on_call=lambda endpoint, status: metrics.mta_calls.labels(endpoint, status).inc(),
        on_wait=metrics.rate_limit_wait.inc,
    )


def mta_clients(
    settings: Settings, metrics: Metrics, store: Store | None = None
) -> dict[str, MTAClient]:
    """A client for every account that has an API key, by account name."""
    return {
        name: mta_client(settings, metrics, store, name)
        for name, account in settings.accounts.items()
        if account.mta_api_key is not None
    }


def send_limiter(settings: Settings, store: Store | None, account: Account) -> Limiter:
    """The `Limiter` for ``POST /send`` of one account: MTA's limit is per account (per
    API key), so the store's shared one is keyed by it; else in memory."""
    if account.mta_api_key is not None and store is not None:
        shared = store.send_limiter(settings.mta_send_rate, account.mta_api_key.reveal())
        if shared is not None:
            return shared
    return SlidingWindowLimiter(settings.mta_send_rate)
