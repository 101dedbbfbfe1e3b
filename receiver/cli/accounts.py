"""``--account``: which MTA account a command reads, changes or calls MTA as
(docs/accounts.md). Not a command module (it is not listed in ``MODULES``).

Reading commands, and those that change the store, take ``default`` or any configured
name, and without the flag mean every account. Commands that call MTA act as one
configured account: the named one, else the environment's (``default``), else the only
one; with several and no ``default`` the operator must say which.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..accounts import Account
from ..errors import ConfigError
from ..mta.events import DEFAULT_ACCOUNT
from ..settings import Settings

WEBHOOK_PATH = "/webhooks/mta"


def add_account(parser: argparse.ArgumentParser, *, calls_mta: bool = False) -> None:
    """The ``--account NAME`` option."""
    parser.add_argument(
        "--account",
        metavar="NAME",
        help=(
            "the MTA account to act as: its API key, secret and URL (default: the"
            " environment's account, or the only one)"
            if calls_mta
            else "only this MTA account's (default: every account's)"
        ),
    )


def known(settings: Settings) -> tuple[str, ...]:
    """Every account a store may hold rows of: the configured ones, and ``default``,
    whose rows predate accounts or outlive the environment's account."""
    return tuple(dict.fromkeys([*settings.accounts, DEFAULT_ACCOUNT]))


def chosen(settings: Settings, name: str | None) -> str | None:
    """The account a reading or store command is limited to; None for every account.
    A name that is no account's is a `ConfigError` (exit 2), not an empty listing."""
    if name is not None and name not in known(settings):
        raise ConfigError(f"no account {name!r}; accounts: {', '.join(known(settings))}")
    return name


def calling(settings: Settings, name: str | None) -> Account:
    """The account a command calls MTA as (its key, base URL and webhook secrets)."""
    if name is not None:
        return settings.account(name)  # a ConfigError naming the accounts served
    if DEFAULT_ACCOUNT in settings.accounts:
        return settings.accounts[DEFAULT_ACCOUNT]
    if len(settings.accounts) == 1:
        return next(iter(settings.accounts.values()))
    raise ConfigError(
        f"several accounts and none is the environment's: pass --account, one of"
        f" {', '.join(settings.accounts)}"
    )


def webhook_url(url: str, name: str) -> str:
    """``url`` as account ``name``'s webhook URL: a URL ending in ``/webhooks/mta`` gets
    ``/NAME`` (the default account's stays as it is); one ending in another account's
    path is refused, as MTA would then sign with a secret that path does not accept.
    Any other path (a proxy's rewrite) is taken as given."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith(WEBHOOK_PATH):
        if name == DEFAULT_ACCOUNT:
            return url
        return urlunsplit(parts._replace(path=f"{path}/{name}"))
    head, _, last = path.rpartition("/")
    if head.endswith(WEBHOOK_PATH) and last != name:
        mine = WEBHOOK_PATH if name == DEFAULT_ACCOUNT else f"{WEBHOOK_PATH}/{name}"
        raise ConfigError(f"--url {url} is account {last!r}'s path, not {name!r}'s ({mine} is)")
    return url


def shows_accounts(settings: Settings, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a listing needs the account column: when a file names accounts, or a
    row is not the default account's."""
    return bool(settings.file_accounts) or any(
        row.get("account", DEFAULT_ACCOUNT) != DEFAULT_ACCOUNT for row in rows
    )


def with_account(
    columns: Sequence[str], settings: Settings, rows: Iterable[Mapping[str, Any]]
) -> tuple[str, ...]:
    """``columns`` with ``account`` second, when `shows_accounts`."""
    if not shows_accounts(settings, rows):
        return tuple(columns)
    return (columns[0], "account", *columns[1:])
