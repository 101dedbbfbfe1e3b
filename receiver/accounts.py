"""The accounts file: several MTA accounts served by one deployment (docs/accounts.md).

``RECEIVER_ACCOUNTS_FILE`` names a TOML file with one ``[accounts.NAME]`` table per
account. Each account has its own webhook secrets (so its own URL, ``/webhooks/mta/NAME``),
its own API key, and may override the environment's fallback settings. The environment's
own configuration, when it names webhook secrets, is the account ``default``.

The file is read once, at start-up, and every mistake stops the service with a message
naming the file and the account.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from . import webhook_secrets
from .errors import ConfigError
from .mta import DEFAULT_BASE_URL
from .mta.events import DEFAULT_ACCOUNT
from .mta.statuses import NEVER_RESEND
from .secret import Secret

ACCOUNTS_FILE = "RECEIVER_ACCOUNTS_FILE"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
"""An account name: it is a URL path segment and a prefix of dedup keys (``name/key``),
so lowercase letters, digits and ``-`` only, at most 40."""


@dataclass(frozen=True, slots=True)
class Account:
    """One MTA account: the secrets its webhooks are signed with, the key it sends with,
    and its fallback settings (the environment's unless its table overrides them)."""

    name: str
    webhook_secrets: tuple[Secret, ...]
    mta_api_key: Secret | None = None
    mta_base_url: str = DEFAULT_BASE_URL
    fallback_enabled: bool = True
    fallback_longcode_id: str | None = None
    fallback_statuses: frozenset[int] = frozenset({5, 6, 8, 9, 13})
    fallback_grace_seconds: float = 300.0


INHERITED = tuple(f.name for f in fields(Account) if f.name not in ("name", "webhook_secrets"))
"""The fields an account shares, by name, with `Settings` (the environment's values)."""

# Key in the file -> field of Account. `fallback` is RECEIVER_FALLBACK's name in the file.
_KEYS = {
    "webhook_secrets": "webhook_secrets",
    "mta_api_key": "mta_api_key",
    "mta_base_url": "mta_base_url",
    "fallback": "fallback_enabled",
    "fallback_longcode_id": "fallback_longcode_id",
    "fallback_statuses": "fallback_statuses",
    "fallback_grace_seconds": "fallback_grace_seconds",
}


def load(path: str, defaults: Account) -> tuple[Account, ...]:
    """The accounts of the file at ``path``, in file order; ConfigError for any mistake.

    ``defaults`` is the environment's account: a key a table omits takes its value, except
    the webhook secrets and the API key, which each account names for itself. Its secrets
    (empty when the environment names none) may not reappear in the file.
    """
    data = _parse(path, _read(path))
    tables = data.get("accounts")
    hint = "write one [accounts.NAME] table per account"
    if unknown := sorted(set(data) - {"accounts"}):
        raise ConfigError(f"{ACCOUNTS_FILE} {path}: unknown key(s) {', '.join(unknown)}; {hint}")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{ACCOUNTS_FILE} {path}: no accounts; {hint}")
    accounts = tuple(_account(path, name, table, defaults) for name, table in tables.items())
    distinct([defaults, *accounts] if defaults.webhook_secrets else accounts, f"{path}: ")
    return accounts


def distinct(accounts: Iterable[Account], where: str = "") -> None:
    """Refuse two accounts of one name, or one webhook secret in two accounts: a body
    signed with it would verify as either, so its account could not be told."""
    names: set[str] = set()
    owners: dict[Secret, str] = {}
    for account in accounts:
        if account.name in names:
            raise ConfigError(f"{ACCOUNTS_FILE} {where}account {account.name!r} appears twice")
        names.add(account.name)
        for secret in account.webhook_secrets:
            owner = owners.setdefault(secret, account.name)
            if owner != account.name:
                raise ConfigError(
                    f"{ACCOUNTS_FILE} {where}account {account.name!r} has a webhook secret of"
                    f" account {owner!r}: each account needs its own, or a webhook signed"
                    " with it could belong to either"
                )


def _read(path: str) -> str:
    """The file's text, refused when others than its owner may read it: it holds
    secrets. The mode is checked on the open file, so it is the file that was read."""
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & 0o077:
                raise ConfigError(
                    f"{ACCOUNTS_FILE} {path} is open to its group or others (mode"
                    f" {stat.S_IMODE(mode):04o}) and holds secrets: chmod 600 {path}"
                )
            raw = file.read()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{ACCOUNTS_FILE}: cannot read {path}: {exc}") from None


def _parse(path: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
        raise ConfigError(f"{ACCOUNTS_FILE} {path} is not valid TOML: {exc}") from None


def _account(path: str, name: str, table: object, defaults: Account) -> Account:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{ACCOUNTS_FILE} {path}: account {name!r}: {message}")

    if name == DEFAULT_ACCOUNT:
        raise fail(
            "the name 'default' is the environment's account (RECEIVER_WEBHOOK_SECRETS at"
            " /webhooks/mta); give this one another name"
        )
    if not NAME.fullmatch(name):
        raise fail("a name is 1 to 40 lowercase letters, digits and '-', not starting with '-'")
    if not isinstance(table, dict):
        raise fail(f"write it as a table, [accounts.{name}]")
    if unknown := sorted(set(table) - set(_KEYS)):
        raise fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    secrets = table.get("webhook_secrets")
    if not (isinstance(secrets, list) and secrets and all(isinstance(s, str) for s in secrets)):
        raise fail('webhook_secrets must be a non-empty list of strings: ["<secret>"]')
    webhook_secrets.too_short(tuple(secrets), f"{ACCOUNTS_FILE} {path}: account {name!r}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key != "webhook_secrets":
            values[_KEYS[key]] = _value(key, value, fail)
    return replace(
        defaults,
        name=name,
        webhook_secrets=tuple(Secret(s) for s in secrets),
        mta_api_key=values.pop("mta_api_key", None),  # never the environment's: its own
        **values,
    )


def _value(key: str, value: object, fail: Callable[[str], ConfigError]) -> object:
    """The field value of one key of a table, checked like its environment variable."""
    if key == "mta_api_key":
        if not isinstance(value, str) or not value.strip():
            raise fail("mta_api_key must be a non-empty string")
        return Secret(value)
    if key == "mta_base_url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise fail("mta_base_url must be a string starting with https:// (or http://)")
        return value
    if key == "fallback":
        if not isinstance(value, bool):
            raise fail(f"fallback must be true or false, got {value!r}")
        return value
    if key == "fallback_longcode_id":
        # MTA's ids are numbers; a TOML integer is taken as written, like the variable.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise fail("fallback_longcode_id must be a longcode id, like 1234")
        return value
    if key == "fallback_statuses":
        if not isinstance(value, list) or not all(_integer(code) for code in value):
            raise fail(f"fallback_statuses must be status codes like [5, 6], got {value!r}")
        if banned := sorted(int(code) for code in set(value) & NEVER_RESEND):
            raise fail(
                f"fallback_statuses may not contain {banned}: invalid, opted-out and landline"
                " numbers are never resent"
            )
        return frozenset(value)
    # fallback_grace_seconds, the last key
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise fail(f"fallback_grace_seconds must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not 1


def from_mapping(name: str, secrets: tuple[Secret, ...], values: Mapping[str, Any]) -> Account:
    """An account from settings-like ``values`` (the fields named in `INHERITED`)."""
    return Account(name, secrets, **{field: values[field] for field in INHERITED})
