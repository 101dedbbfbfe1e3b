"""``doctor``: check a deployment end to end and say how to fix what is wrong.

Checks, in order: the settings load; the database opens, its migrations are current and
it takes writes (and, on PostgreSQL, autovacuum is on, max_connections fits the pools,
commits are durable: receiver/cli/pgcheck.py); MTA accepts the API key; which
proxies are trusted; the body limit; and, with ``--url``, that a signed test webhook sent
to the public URL gets a 200 and lands in this database. Exit status 1 when any check
fails, 2 when the settings do not load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..mta.events import DEFAULT_ACCOUNT, account_key, dedup_key, identify
from ..settings import Settings
from ..store import Store, create_store, missing_database
from .accountchecks import longcode, mta_keys
from .checks import FAIL, OK, SKIP, WARN, Check, report
from .common import load_settings, progress
from .pgcheck import postgres_checks
from .probe import base_url, fix_for, probe_body, send_probe

MIN_BODY, MAX_BODY = 16 * 1024, 10 * 1024 * 1024


def register(commands: Any) -> None:
    """Add ``doctor``."""
    doctor_ = commands.add_parser("doctor", help="check the deployment and print fixes")
    doctor_.add_argument(
        "--url", help="public webhook URL to test end to end, e.g. https://host/webhooks/mta"
    )
    doctor_.add_argument("--json", action="store_true", help="print JSON instead of lines")
    doctor_.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    """Run every check, print each with its fix; exit 1 when any failed."""
    try:
        settings = Settings.from_env()
        checks = [Check("configuration", OK, "settings load")]
    except ConfigError as exc:
        try:  # without --url the doctor signs nothing: the webhook secret alone may be absent
            if args.url is not None:
                raise
            settings = load_settings(read_only=True)
        except ConfigError:
            checks = [Check("configuration", FAIL, str(exc), "set the variable as described")]
            report(checks, args.json)
            return 2
        checks = [
            Check(
                "configuration",
                WARN,
                f"settings load, but not for the service: {exc}",
                "the service needs RECEIVER_WEBHOOK_SECRETS; this check needs it only with --url",
            )
        ]
    checks += asyncio.run(run_checks(settings, args.url))
    report(checks, args.json)
    return 1 if any(c.status == FAIL for c in checks) else 0


async def run_checks(settings: Settings, url: str | None) -> list[Check]:
    """Every check after the settings loaded."""
    checks: list[Check] = []
    store: Store | None = None
    try:
        if (path := missing_database(settings.database_url)) is not None:
            raise FileNotFoundError(f"no database at {path}")  # opening would create it
        opened = create_store(settings.database_url)
        await opened.open(migrate=False)  # the doctor observes; it does not migrate
        store = opened
    except Exception as exc:
        detail = (
            str(exc)
            if isinstance(exc, FileNotFoundError)
            else f"cannot open: {type(exc).__name__}: {exc}"
        )
        checks.append(
            Check(
                "database",
                FAIL,
                detail,
                "check RECEIVER_DATABASE_URL (a relative path is relative to the current"
                " directory), the file's directory and permissions, or that the PostgreSQL"
                " server is up and the user may connect",
            )
        )
    try:
        if store is not None:
            checks += await database(store)
            checks += await postgres_checks(store, settings)
        checks += await mta_keys(settings)
        checks.append(proxies(settings))
        checks.append(body_limit(settings))
        checks += [longcode(account) for account in settings.accounts.values()]
        checks.append(await round_trip(settings, store, url))
    finally:
        if store is not None:
            await store.close()
    return checks


async def database(store: Store) -> list[Check]:
    """Migrations current and a write accepted."""
    checks = []
    try:
        pending = [m for m in await store.migration_status() if m.applied_at is None]
    except Exception as exc:
        pending = []
        checks.append(Check("migrations", FAIL, f"cannot read: {exc}", "mta-receiver db status"))
    else:
        if pending:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
            checks.append(
                Check(
                    "migrations",
                    FAIL,
                    f"{len(pending)} pending: {names}",
                    "run `mta-receiver db upgrade` (or start the service: it migrates)",
                )
            )
        else:
            checks.append(Check("migrations", OK, f"current ({store.describe()})"))
    try:
        async with asyncio.timeout(10):
            await store.heartbeat("doctor", time.time())
    except Exception as exc:
        checks.append(
            Check(
                "database writes",
                FAIL,
                f"{type(exc).__name__}: {exc}",
                "the receiver answers 503 to every webhook until the database takes writes:"
                " check disk space, permissions, read-only mounts or replicas",
            )
        )
    else:
        checks.append(Check("database writes", OK, "a write committed"))
    if (vacuum := await autovacuum(store)) is not None:
        checks.append(vacuum)
    return checks


async def autovacuum(store: Store) -> Check | None:
    """PostgreSQL's autovacuum: without it finished events leave dead index entries and
    the planner has no statistics, and the worker's claims slow down as backlogs grow.
    Autovacuum also needs ``track_counts`` to know which tables changed. None: the store
    has no autovacuum (SQLite)."""
    try:
        settings = await store.vacuum_settings()
    except Exception as exc:
        return Check("autovacuum", WARN, f"cannot read: {type(exc).__name__}: {exc}")
    if settings is None:
        return None
    off = [name for name, value in settings.items() if value != "on"]
    if not off:
        return Check("autovacuum", OK, "on")
    return Check(
        "autovacuum",
        WARN,
        f"{' and '.join(off)} off: finished events leave dead index entries and the"
        " planner no statistics; the worker's claims slow down as a backlog grows",
        "; ".join(f"ALTER SYSTEM SET {name} = on" for name in off)
        + "; SELECT pg_reload_conf(); (or run VACUUM ANALYZE events every few minutes)",
    )


def proxies(settings: Settings) -> Check:
    """Whose ``X-Forwarded-For`` is believed (the deploy's proxy settings)."""
    trusted, allowed = settings.forwarded_allow_ips, settings.webhook_allow_networks
    detail = (
        f"RECEIVER_FORWARDED_ALLOW_IPS={','.join(trusted) or '(none)'};"
        f" RECEIVER_WEBHOOK_ALLOW_NETWORKS={','.join(allowed) or '(any source)'}"
    )
    if "*" in trusted:
        return Check(
            "proxy headers",
            WARN,
            detail,
            "'*' believes X-Forwarded-For from anyone: list only your proxy's addresses",
        )
    return Check("proxy headers", OK, detail)


def body_limit(settings: Settings) -> Check:
    """A limit that fits MTA's bodies without inviting huge ones."""
    limit = settings.max_body_bytes
    if limit < MIN_BODY:
        return Check(
            "body limit",
            WARN,
            f"{limit} bytes: long replies or MMS bodies may get 413",
            f"set RECEIVER_MAX_BODY_BYTES to at least {MIN_BODY} (default 262144)",
        )
    if limit > MAX_BODY:
        return Check(
            "body limit",
            WARN,
            f"{limit} bytes: anyone can make the receiver read that much per request",
            "set RECEIVER_MAX_BODY_BYTES to 262144 (the default) or so",
        )
    return Check("body limit", OK, f"{limit} bytes")


async def round_trip(settings: Settings, store: Store | None, url: str | None) -> Check:
    """A signed test webhook through the public URL, then found in this database."""
    name = "public URL"
    if url is None:
        return Check(name, SKIP, "not tested", "pass --url https://host/webhooks/mta")
    # The URL's path says whose secret signs: /webhooks/mta/NAME is account NAME's.
    account = settings.accounts.get(url_account(url))
    if account is None:
        return Check(
            name,
            FAIL,
            f"{base_url(url)} names account {url_account(url)!r}, which is not configured"
            f" here (accounts: {', '.join(settings.accounts)})",
            "pass the URL of a configured account: .../webhooks/mta or .../webhooks/mta/NAME",
        )
    body = probe_body()
    progress(f"sending a signed test webhook to {base_url(url)} (waits up to 10 s) ...")
    result = await send_probe(url, account.webhook_secrets[0].reveal(), body)
    target = base_url(url)
    if result.status is None:
        return Check(
            name,
            FAIL,
            f"no answer from {target}: {result.error}",
            "check that the receiver runs, DNS, TLS, the proxy and firewalls in between",
        )
    if not result.accepted:
        return Check(name, FAIL, f"{target} answered {result.status}", fix_for(result.status))
    if store is None:
        return Check(name, WARN, f"{target} answered 200; the database could not be checked")
    key = account_key(account.name, dedup_key(identify(json.loads(body)), body))
    event_id = await store.operator.event_id(key)
    if event_id is None:
        return Check(
            name,
            FAIL,
            f"{target} answered 200 but the test event is not in this database",
            "the URL reaches a receiver with another RECEIVER_DATABASE_URL: use the same one",
        )
    return Check(name, OK, f"a signed test event round-tripped (event {event_id})")


def url_account(url: str) -> str:
    """The account a webhook URL names: ``NAME`` for ``.../webhooks/mta/NAME``, else the
    environment's."""
    path = urlsplit(url).path.rstrip("/")
    head, _, last = path.rpartition("/")
    return last if head.endswith("/webhooks/mta") else DEFAULT_ACCOUNT
