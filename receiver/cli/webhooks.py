"""``webhooks register|list|rotate-secret|prune|delete``: our registrations at MTA.

Registering the same (event, url) twice makes MTA deliver every event twice (docs/mta.md,
"Webhook registrations"), so ``register`` lists first and creates only what is missing,
and ``prune`` deletes the extra ones an earlier run (or another tool) left. Each event
type gets its own URL (``?event=...``): the type never depends on the loosely documented
body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..accounts import Account
from ..metrics import Metrics
from ..mta import MTAClient
from ..mta.events import DEFAULT_ACCOUNT, EVENT_TYPES
from ..mta.paging import all_rows
from ..services import mta_client
from ..settings import Settings
from .accounts import add_account, calling, webhook_url
from .common import add_json, load_settings, print_rows, require, row_id
from .probe import base_url, probe_body, send_probe

# docs/mta.md: MTA's defaults for these are undocumented, so register always sends them;
# skipErrors is never sent (it would silence MTA's retries and failure e-mails).
REGISTER_OPTIONS = {"retryOnError": True, "maxThroughputPerMinute": 600}
ROTATION_STEPS = """\
A secret rotation, so that no webhook is rejected during the change:
  1. add the new secret to RECEIVER_WEBHOOK_SECRETS (comma-separated, after the current
     one) and restart or roll every replica;
  2. run: mta-receiver webhooks rotate-secret --new-secret <the new secret> [--url URL]
     (it PATCHes every registration pointing at our URL);
  3. remove the old secret from RECEIVER_WEBHOOK_SECRETS and roll the replicas again."""


def register(commands: Any) -> None:
    """Add ``webhooks`` (``register``, ``list``, ``rotate-secret``)."""
    webhooks = commands.add_parser("webhooks", help="manage our webhook registrations at MTA")
    actions = webhooks.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="register each event at its own URL, once")
    reg.add_argument("--url", required=True, help="public URL, e.g. https://host/webhooks/mta")
    reg.add_argument("--events", default="all", help="all, or EVENT[,EVENT] (default all)")
    reg.add_argument("--alert-email", help="MTA e-mails this address when a delivery to us fails")
    add_account(reg, calls_mta=True)
    add_json(reg)
    reg.set_defaults(func=register_webhooks)
    list_ = actions.add_parser("list", help="every registration of the account")
    add_account(list_, calls_mta=True)
    add_json(list_)
    list_.set_defaults(func=list_webhooks)
    rotate = actions.add_parser("rotate-secret", help="switch our registrations to a new secret")
    rotate.add_argument("--new-secret", help="the new secret (default: generate one)")
    rotate.add_argument(
        "--url",
        required=True,
        help="our public URL: only its registrations change, after a signed test there",
    )
    add_account(rotate, calls_mta=True)
    add_json(rotate)
    rotate.set_defaults(func=rotate_secret)
    prune = actions.add_parser(
        "prune", help="delete duplicate registrations of one (event, url), keeping the oldest"
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    add_account(prune, calls_mta=True)
    add_json(prune)
    prune.set_defaults(func=prune_webhooks)
    delete = actions.add_parser("delete", help="delete one registration by its id")
    delete.add_argument("id", type=row_id, help="the registration's id (see webhooks list)")
    add_account(delete, calls_mta=True)
    delete.set_defaults(func=delete_webhook)


def event_url(url: str, event: str) -> str:
    """``url`` with ``event=<event>`` in its query string (any other parameter kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "event"] + [("event", event)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def ours(row: dict[str, Any], url: str) -> bool:
    """Whether a registration points at our URL (any ``?event=``)."""
    return base_url(str(row.get("url", ""))) == base_url(url)


async def all_registrations(client: MTAClient) -> list[dict[str, Any]]:
    """Every registration, each once (secrets are never returned)."""
    return await all_rows(client, "webhooks")


def acting(args: argparse.Namespace) -> tuple[Settings, Account]:
    """The settings and the account of ``--account``, whose API key, base URL and
    secrets the command uses."""
    settings = load_settings()
    return settings, calling(settings, args.account)


def run_with_client(settings: Settings, work: Any, account: str = DEFAULT_ACCOUNT) -> Any:
    """Run ``work(client)`` with ``account``'s MTA client (its API key is required)."""

    async def run() -> Any:
        client = mta_client(settings, Metrics(), account=account)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def chosen_events(spec: str) -> list[str]:
    """``all`` or a comma-separated list of MTA event types."""
    if spec.strip() == "all":
        return list(EVENT_TYPES)
    events = [e.strip() for e in spec.split(",") if e.strip()]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    require(bool(events) and not unknown, f"--events: all or some of {', '.join(EVENT_TYPES)}")
    return events


def register_webhooks(args: argparse.Namespace) -> int:
    """Create the registrations that are missing; never a second one of the same pair.
    With ``--account NAME``: that account's URL (``.../webhooks/mta/NAME``), secret and key."""
    events = chosen_events(args.events)
    require(args.url.startswith(("https://", "http://")), "--url must be an http(s) URL")
    settings, account = acting(args)
    base = webhook_url(args.url, account.name)
    secret = account.webhook_secrets[0].reveal()
    options: dict[str, Any] = dict(REGISTER_OPTIONS)
    if args.alert_email:
        options.update(alertEmail=args.alert_email, sendAlertEmail=True)

    async def work(client: MTAClient) -> list[dict[str, Any]]:
        existing = await all_registrations(client)
        report = []
        for event in events:
            url = event_url(base, event)
            same = [r for r in existing if r.get("event") == event and r.get("url") == url]
            if same:
                action = "exists" if len(same) == 1 else f"exists {len(same)} times"
                report.append(
                    {"event": event, "url": url, "id": same[0].get("id"), "action": action}
                )
                continue
            created = await client.request(
                "POST",
                "webhooks",
                json={"event": event, "url": url, "secret": secret, **options},
            )
            report.append(
                {"event": event, "url": url, "id": created.get("id"), "action": "created"}
            )
        return report

    report = run_with_client(settings, work, account.name)
    print_rows(report, ("event", "id", "action", "url"), args.json)
    if not args.json and any(r["action"].startswith("exists ") for r in report):
        print(
            "some pairs are registered more than once: MTA delivers those events twice;"
            " run: mta-receiver webhooks prune"
        )
    return 0


def list_webhooks(args: argparse.Namespace) -> int:
    """Print every registration of the account."""
    settings, account = acting(args)
    rows = run_with_client(settings, all_registrations, account.name)
    print_rows(rows, ("id", "event", "createdAt", "retryOnError", "url"), args.json)
    return 0


def rotate_secret(args: argparse.Namespace) -> int:
    """PATCH our registrations to a secret the receivers already accept; refuse otherwise."""
    settings, account = acting(args)
    url = webhook_url(args.url, account.name)
    new = args.new_secret or secrets.token_hex(64)  # MTA's are 128 hex characters
    accepted = [s.reveal() for s in account.webhook_secrets]
    if new not in accepted:
        if not args.new_secret:
            print(f"generated a new secret: {new}\n")
        where = (
            "RECEIVER_WEBHOOK_SECRETS"
            if account.name == DEFAULT_ACCOUNT
            else f"the webhook_secrets of account {account.name!r} (RECEIVER_ACCOUNTS_FILE)"
        )
        print(
            f"refusing: the new secret is not in {where} yet, so the"
            " receivers would reject every webhook signed with it.\n"
        )
        print(ROTATION_STEPS)
        return 1
    result = asyncio.run(send_probe(url, new, probe_body()))
    if not result.accepted:
        print(
            f"refusing: a test webhook signed with the new secret got"
            f" {result.status or result.error} from {base_url(url)}; make sure"
            " every replica runs with it (step 1), then try again.\n"
        )
        print(ROTATION_STEPS)
        return 1

    async def work(client: MTAClient) -> list[dict[str, Any]]:
        changed = []
        for row in await all_registrations(client):
            if ours(row, url):
                await client.request("PATCH", f"webhooks/{row['id']}", json={"secret": new})
                changed.append({"id": row["id"], "event": row.get("event"), "url": row["url"]})
        return changed

    changed = run_with_client(settings, work, account.name)
    if args.json:
        print(json.dumps({"updated": changed}))
    else:
        print_rows(changed, ("id", "event", "url"), False)
        print(
            f"{len(changed)} registration(s) now use the new secret. Next: remove the old"
            " secret from RECEIVER_WEBHOOK_SECRETS and roll the replicas (step 3)."
        )
    return 0 if changed else 1


def duplicates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every registration but the oldest of its (event, url) pair."""
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_pair.setdefault((str(row.get("event")), str(row.get("url"))), []).append(row)
    extra = []
    for same in by_pair.values():
        same.sort(key=_age)
        extra += same[1:]
    return extra


def _age(row: dict[str, Any]) -> tuple[str, int]:
    """Oldest first: by createdAt (ISO text sorts by time), then by id."""
    ident = str(row.get("id"))
    number = int(ident) if ident.isdigit() else 0
    return (str(row.get("createdAt") or ""), number)


def prune_webhooks(args: argparse.Namespace) -> int:
    """Delete duplicate registrations (or, with --dry-run, list them)."""

    async def work(client: MTAClient) -> list[dict[str, Any]]:
        extra = duplicates(await all_registrations(client))
        report = []
        for row in extra:
            if not args.dry_run:
                await client.request("DELETE", f"webhooks/{row['id']}")
            action = "would delete" if args.dry_run else "deleted"
            report.append(
                {
                    "id": row["id"],
                    "event": row.get("event"),
                    "url": row.get("url"),
                    "action": action,
                }
            )
        return report

    settings, account = acting(args)
    report = run_with_client(settings, work, account.name)
    print_rows(report, ("id", "event", "action", "url"), args.json)
    if not args.json:
        verb = "would be deleted" if args.dry_run else "deleted"
        print(f"{len(report)} duplicate registration(s) {verb}; the oldest of each pair kept.")
    return 0


def delete_webhook(args: argparse.Namespace) -> int:
    """Delete one registration (MTA answers 200 with a message, or 204: both are fine)."""

    async def work(client: MTAClient) -> None:
        await client.request("DELETE", f"webhooks/{args.id}")

    settings, account = acting(args)
    run_with_client(settings, work, account.name)
    print(f"deleted registration {args.id}")
    return 0
