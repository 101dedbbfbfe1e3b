"""Settings: one frozen value built once from the environment and passed explicitly.

Every variable is prefixed ``RECEIVER_``; the README's configuration table lists them all.
Validation happens here, at start-up, so a bad value stops the service with a clear
message instead of failing on the first webhook.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import accounts as accounts_file
from . import webhook_secrets
from .accounts import Account
from .env_values import boolean, pairs, status_codes
from .errors import ConfigError
from .mta import DEFAULT_BASE_URL
from .mta.events import DEFAULT_ACCOUNT
from .mta.ratelimit import Rate
from .mta.statuses import NEVER_RESEND
from .secret import Secret as Secret  # re-exported: importers take it from here
from .web import netpolicy

DEFAULT_DATABASE_URL = "sqlite:///receiver.db"
MTA_SEND_RATE = Rate(25, 15.0)  # POST /send: 25 requests per 15 s per account (docs/mta.md)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
OPT_OUT_SCOPES = ("account", "global")


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration of one receiver process.

    `accounts` holds every MTA account it serves: ``default``, from the environment's own
    values, when ``webhook_secrets`` is set, then those of ``RECEIVER_ACCOUNTS_FILE``
    (``file_accounts``). One of the two must name an account.
    """

    webhook_secrets: tuple[Secret, ...] = ()  # the default account's; () with a file only
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    handlers: tuple[str, ...] = ()
    max_body_bytes: int = 262_144
    read_timeout: float = 10.0
    max_attempts: int = 8
    handler_timeout: float = 60.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 600.0
    lease_seconds: float = 60.0
    worker_concurrency: int = 32
    worker_poll_seconds: float = 1.0
    heartbeat_seconds: float = 2.0
    pg_pool_size: int = 10
    pg_statement_cache_size: int = 100
    shutdown_grace_seconds: float = 10.0
    run_worker: bool = True
    log_format: str = "auto"
    log_level: str = "INFO"
    redact: bool = True
    mta_api_key: Secret | None = None
    mta_base_url: str = DEFAULT_BASE_URL
    mta_send_rate: Rate = MTA_SEND_RATE
    mta_timeout: float = 10.0
    fallback_enabled: bool = True
    fallback_statuses: frozenset[int] = frozenset({5, 6, 8, 9, 13})
    fallback_grace_seconds: float = 300.0
    fallback_reconcile_seconds: float = 900.0
    # A failure older than this (a backfilled one, docs/backfill.md) is not resent.
    fallback_max_age: float = 14_400.0
    # receiver/backfill/: a rolling backfill every this many seconds (0: off), and the
    # silence of every worker, found at start-up, that makes a repair of the gap.
    backfill_interval: float = 0.0
    backfill_gap_seconds: float = 600.0
    fallback_resend_unknown: bool = False
    fallback_imessage_tags: tuple[tuple[str, str], ...] = ()
    fallback_text_lookup: str | None = None
    # The longcode (no Sender Identity attached) every resend names, so it goes out as SMS.
    fallback_longcode_id: str | None = None
    # The country code a national phone number gets (receiver/mta/phones.py), digits only.
    default_country_code: str = "1"
    admin_password: Secret | None = None  # unset: the dashboard is off (404)
    session_secret: Secret | None = None  # unset: a random one per process
    admin_secure_cookies: bool = True
    # Behind a reverse proxy (receiver/web/netpolicy.py): proxies whose X-Forwarded-* we believe,
    # and the optional allow-list of webhook sources (empty: everyone).
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    webhook_allow_networks: tuple[str, ...] = ()
    # The accounts of RECEIVER_ACCOUNTS_FILE (receiver/accounts.py), validated when read.
    file_accounts: tuple[Account, ...] = ()
    # Whether an opt-out (STOP) received by one account stops resends in that account only
    # or in all of them: "account" or "global" (docs/accounts.md).
    opt_out_scope: str = "account"
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    accounts: Mapping[str, Account] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Every account served, by name: ``default`` first (when the environment names
    webhook secrets), then the file's in its order. Built from the fields above."""

    def __post_init__(self) -> None:
        if not all(s.reveal() for s in self.webhook_secrets) or not (
            self.webhook_secrets or self.file_accounts
        ):
            raise ConfigError(
                "RECEIVER_WEBHOOK_SECRETS is empty: set it to the secret(s) of your MTA webhook"
                " registrations (comma-separated during a rotation), or name accounts in"
                f" {accounts_file.ACCOUNTS_FILE}"
            )
        webhook_secrets.too_short(
            tuple(s.reveal() for s in self.webhook_secrets), webhook_secrets.VARIABLE
        )
        served = list(self.file_accounts)
        if self.webhook_secrets:
            values = {name: getattr(self, name) for name in accounts_file.INHERITED}
            served.insert(
                0, accounts_file.from_mapping(DEFAULT_ACCOUNT, self.webhook_secrets, values)
            )
        elif any(account.name == DEFAULT_ACCOUNT for account in served):
            raise ConfigError(f"{accounts_file.ACCOUNTS_FILE}: the name 'default' is reserved")
        accounts_file.distinct(served)
        # Frozen: set once here, so every reader sees the same mapping, read-only.
        object.__setattr__(
            self, "accounts", MappingProxyType({account.name: account for account in served})
        )
        if self.opt_out_scope not in OPT_OUT_SCOPES:
            raise ConfigError(
                f"RECEIVER_OPT_OUT_SCOPE must be account or global, got {self.opt_out_scope!r}"
            )
        if not self.database_url.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise ConfigError(
                f"RECEIVER_DATABASE_URL must start with sqlite:/// or postgresql://,"
                f" got {self.database_url.split(':', 1)[0]!r}"
            )
        positive = {
            "RECEIVER_MAX_BODY_BYTES": self.max_body_bytes,
            "RECEIVER_READ_TIMEOUT": self.read_timeout,
            "RECEIVER_MAX_ATTEMPTS": self.max_attempts,
            "RECEIVER_HANDLER_TIMEOUT": self.handler_timeout,
            "RECEIVER_RETRY_BASE_SECONDS": self.retry_base_seconds,
            "RECEIVER_RETRY_MAX_SECONDS": self.retry_max_seconds,
            "RECEIVER_LEASE_SECONDS": self.lease_seconds,
            "RECEIVER_WORKER_CONCURRENCY": self.worker_concurrency,
            "RECEIVER_WORKER_POLL_SECONDS": self.worker_poll_seconds,
            "RECEIVER_HEARTBEAT_SECONDS": self.heartbeat_seconds,
            "RECEIVER_PG_POOL_SIZE": self.pg_pool_size,
        }
        for name, value in positive.items():
            if not (0 < value < math.inf):  # also refuses nan
                raise ConfigError(f"{name} must be greater than 0, got {value}")
        if banned := sorted(int(code) for code in self.fallback_statuses & NEVER_RESEND):
            raise ConfigError(
                f"RECEIVER_FALLBACK_STATUSES may not contain {banned}: invalid, opted-out and"
                " landline numbers are never resent"
            )
        if self.pg_statement_cache_size < 0:
            raise ConfigError("RECEIVER_PG_STATEMENT_CACHE_SIZE must be >= 0 (0: no cache)")
        if not 0 <= self.shutdown_grace_seconds < math.inf:
            raise ConfigError("RECEIVER_SHUTDOWN_GRACE_SECONDS must be >= 0")
        if not (self.default_country_code.isdigit() and len(self.default_country_code) <= 3):
            raise ConfigError(
                "RECEIVER_DEFAULT_COUNTRY_CODE must be a country calling code like 1 or 44,"
                f" got {self.default_country_code!r}"
            )
        if self.fallback_grace_seconds < 0 or self.fallback_reconcile_seconds <= 0:
            raise ConfigError("RECEIVER_FALLBACK_GRACE_SECONDS/RECONCILE_SECONDS must be >= 0")
        for name in ("fallback_max_age", "backfill_interval", "backfill_gap_seconds"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"RECEIVER_{name.upper()} must be >= 0 seconds")
        netpolicy.check_forwarded_allow_ips(self.forwarded_allow_ips)
        netpolicy.parse_networks(self.webhook_allow_networks, netpolicy.WEBHOOK_ALLOW_NETWORKS)
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"RECEIVER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.log_format not in ("auto", "json", "text"):
            raise ConfigError(
                f"RECEIVER_LOG_FORMAT must be auto, json or text, got {self.log_format!r}"
            )

    def account(self, name: str) -> Account:
        """The account called ``name``; ConfigError, naming those served, when there is
        none (an operator's ``--account`` typo, say)."""
        try:
            return self.accounts[name]
        except KeyError:
            served = ", ".join(self.accounts)
            raise ConfigError(f"no account {name!r}; this receiver serves: {served}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``RECEIVER_*`` variables; ``overrides`` win (CLI flags)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"RECEIVER_{name}")
            return value.strip() if value is not None and value.strip() else None

        values: dict[str, Any] = {
            "handlers": tuple(h.strip() for h in (get("HANDLERS") or "").split(",") if h.strip()),
        }
        accounts_path = get("ACCOUNTS_FILE")
        # Read-only commands pass their own secrets. With an accounts file, the environment's
        # own (default) account is optional: it exists when the environment names secrets.
        named = get("WEBHOOK_SECRETS") or get("WEBHOOK_SECRETS_FILE")
        if "webhook_secrets" not in overrides and (named or accounts_path is None):
            values["webhook_secrets"] = tuple(Secret(s) for s in webhook_secrets.from_env(env))
        if (url := get("DATABASE_URL")) is not None:
            values["database_url"] = url
        typed: dict[str, type] = {
            "max_body_bytes": int,
            "read_timeout": float,
            "max_attempts": int,
            "handler_timeout": float,
            "retry_base_seconds": float,
            "retry_max_seconds": float,
            "lease_seconds": float,
            "worker_concurrency": int,
            "worker_poll_seconds": float,
            "heartbeat_seconds": float,
            "pg_pool_size": int,
            "pg_statement_cache_size": int,
            "shutdown_grace_seconds": float,
            "mta_timeout": float,
            "fallback_grace_seconds": float,
            "fallback_reconcile_seconds": float,
            "fallback_max_age": float,
            "backfill_interval": float,
            "backfill_gap_seconds": float,
        }
        for name, kind in typed.items():
            raw = get(name.upper())
            if raw is None:
                continue
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ConfigError(
                    f"RECEIVER_{name.upper()} must be a{'n integer' if kind is int else ' number'},"
                    f" got {raw!r}"
                ) from None
        for name in ("log_format", "log_level"):
            if (raw := get(name.upper())) is not None:
                values[name] = raw.lower() if name == "log_format" else raw.upper()
        for name in ("redact", "fallback_enabled", "fallback_resend_unknown"):
            env_name = "FALLBACK" if name == "fallback_enabled" else name.upper()
            if (raw := get(env_name)) is not None:
                values[name] = boolean(f"RECEIVER_{env_name}", raw)
        if (raw := get("MTA_API_KEY")) is not None:
            values["mta_api_key"] = Secret(raw)
        if (raw := get("MTA_BASE_URL")) is not None:
            values["mta_base_url"] = raw
        if (raw := get("MTA_SEND_RATE")) is not None:
            values["mta_send_rate"] = Rate.parse(raw)
        if (raw := get("FALLBACK_STATUSES")) is not None:
            values["fallback_statuses"] = status_codes(raw)
        if (raw := get("FALLBACK_IMESSAGE_TAGS")) is not None:
            values["fallback_imessage_tags"] = pairs(raw)
        if (raw := get("FALLBACK_TEXT_LOOKUP")) is not None:
            values["fallback_text_lookup"] = raw
        if (raw := get("FALLBACK_LONGCODE_ID")) is not None:
            values["fallback_longcode_id"] = raw
        if (raw := get("OPT_OUT_SCOPE")) is not None:
            values["opt_out_scope"] = raw.lower()
        if (raw := get("DEFAULT_COUNTRY_CODE")) is not None:
            values["default_country_code"] = raw.lstrip("+")
        for name in ("admin_password", "session_secret"):
            if (raw := get(name.upper())) is not None:
                values[name] = Secret(raw)
        if (raw := get("ADMIN_INSECURE_COOKIES")) is not None:
            values["admin_secure_cookies"] = not boolean("RECEIVER_ADMIN_INSECURE_COOKIES", raw)
        if (raw := get("FORWARDED_ALLOW_IPS")) is not None:
            values["forwarded_allow_ips"] = netpolicy.split(raw)
        if (raw := get("WEBHOOK_ALLOW_NETWORKS")) is not None:
            values["webhook_allow_networks"] = netpolicy.split(raw)
        values["extra"] = {k: v for k, v in env.items() if k.startswith("RECEIVER_")}
        values.update(overrides)
        if accounts_path is not None and "file_accounts" not in overrides:
            # The file's accounts inherit the environment's values, read above.
            inherited = {
                f: values.get(f, cls.__dataclass_fields__[f].default)
                for f in accounts_file.INHERITED
            }
            environment = accounts_file.from_mapping(
                DEFAULT_ACCOUNT, values.get("webhook_secrets", ()), inherited
            )
            values["file_accounts"] = accounts_file.load(accounts_path, environment)
        return cls(**values)
