"""The doctor's checks of each MTA account: its API key, asked of MTA, and the longcode
its SMS resends name."""

from __future__ import annotations

from ..accounts import Account
from ..fallback.content import NO_LONGCODE
from ..metrics import Metrics
from ..mta.events import DEFAULT_ACCOUNT
from ..services import mta_client
from ..settings import Settings
from .checks import FAIL, OK, SKIP, WARN, Check
from .common import progress


def _named(check: str, account: Account) -> str:
    """A check's name, with the account's for any but the environment's."""
    return check if account.name == DEFAULT_ACCOUNT else f"{check} ({account.name})"


def _where(account: Account, variable: str) -> str:
    """Where an account's setting is set: the variable, or its table in the file."""
    if account.name == DEFAULT_ACCOUNT:
        return f"RECEIVER_{variable.upper()}"
    return f"{variable} in [accounts.{account.name}] of RECEIVER_ACCOUNTS_FILE"


async def mta_keys(settings: Settings) -> list[Check]:
    """Each account's API key, asked of MTA (``GET /auth/verify-api-key``)."""
    keyed = [a for a in settings.accounts.values() if a.mta_api_key is not None]
    if not keyed:
        return [
            Check(
                "MTA API key",
                WARN,
                "no API key is set: no SMS fallback, no webhooks commands",
                "set RECEIVER_MTA_API_KEY (or mta_api_key in an account's table) to an API"
                " key from MTA's dashboard",
            )
        ]
    return [await mta_key(settings, account) for account in keyed]


async def mta_key(settings: Settings, account: Account) -> Check:
    """``GET /auth/verify-api-key`` with one account's key."""
    name = _named("MTA API key", account)
    progress(f"asking MTA whether the API key{_of(account)} is valid ...")
    client = mta_client(settings, Metrics(), account=account.name)
    client.max_retries = 1  # a doctor answers quickly; one retry covers a blip
    try:
        valid = await client.verify_key()
    except Exception as exc:
        return Check(
            name,
            FAIL,
            f"cannot check at {account.mta_base_url}: {exc}",
            f"check {_where(account, 'mta_base_url')} and that this host can reach it"
            " (DNS, egress)",
        )
    finally:
        await client.aclose()
    if not valid:
        return Check(
            name,
            FAIL,
            "MTA rejected the key",
            f"set {_where(account, 'mta_api_key')} to a current key (MTA dashboard > API keys)",
        )
    return Check(name, OK, "MTA accepts it")


def _of(account: Account) -> str:
    return "" if account.name == DEFAULT_ACCOUNT else f" of {account.name}"


def longcode(account: Account) -> Check:
    """An account's resends name a longcode without a Sender Identity, or they may go as
    iMessage."""
    name = _named("SMS resend longcode", account)
    if not account.fallback_enabled or account.mta_api_key is None:
        return Check(name, SKIP, "resends are off")
    if account.fallback_longcode_id:
        return Check(name, OK, f"resends use longcode {account.fallback_longcode_id}")
    return Check(name, WARN, NO_LONGCODE, f"set {_where(account, 'fallback_longcode_id')}")
