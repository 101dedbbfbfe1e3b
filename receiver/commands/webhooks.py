"""``webhooks register|list|rotate-secret``: our registrations at MTA (API.md "Webhooks").

Registering the same (event, url) twice makes MTA deliver every event twice, so
``register`` lists first and creates only what is missing. Each event type gets its own
URL (``?event=...``): the type then never depends on the loosely documented body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..app import WEBHOOK_PATH
from ..events import EVENT_TYPES
from ..metrics import Metrics
from ..mta import MTAClient
from ..services import mta_client
from ..settings import Settings
from .common import add_json, load_settings, print_rows, require
from .probe import base_url, probe_body, send_probe

PAGE_SIZE = 100
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
    add_json(reg)
    reg.set_defaults(func=register_webhooks)
    list_ = actions.add_parser("list", help="every registration of the account")
    add_json(list_)
    list_.set_defaults(func=list_webhooks)
    rotate = actions.add_parser("rotate-secret", help="switch our registrations to a new secret")
    rotate.add_argument("--new-secret", help="the new secret (default: generate one)")
    rotate.add_argument(
        "--url", help="our public URL: only its registrations change, after a signed test"
    )
    add_json(rotate)
    rotate.set_defaults(func=rotate_secret)


def event_url(url: str, event: str) -> str:
    """``url`` with ``event=<event>`` in its query string (any other parameter kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "event"] + [("event", event)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def ours(row: dict[str, Any], url: str | None) -> bool:
    """Whether a registration points at our URL (any ``?event=``), or, without a URL, at
    a receiver's webhook path."""
    target = str(row.get("url", ""))
    if url is None:
        return urlsplit(target).path.rstrip("/").endswith(WEBHOOK_PATH)
    return base_url(target) == base_url(url)


async def all_registrations(client: MTAClient) -> list[dict[str, Any]]:
    """Every registration, paging through ``data.rows`` (secrets are never returned)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        data = await client.request("GET", "webhooks", params={"page": page, "pageSize": PAGE_SIZE})
        rows = [r for r in data.get("rows", []) if isinstance(r, dict)]
        found += rows
        total = data.get("total")
        if len(rows) < PAGE_SIZE or (isinstance(total, int) and len(found) >= total):
            return found
        page += 1


def run_with_client(settings: Settings, work: Any) -> Any:
    """Run ``work(client)`` with an MTA client (``RECEIVER_MTA_API_KEY`` is required)."""

    async def run() -> Any:
        client = mta_client(settings, Metrics())
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
    """Create the registrations that are missing; never a second one of the same pair."""
    settings = load_settings()
    events = chosen_events(args.events)
    require(args.url.startswith(("https://", "http://")), "--url must be an http(s) URL")
    secret = settings.webhook_secrets[0].reveal()

    async def work(client: MTAClient) -> list[dict[str, Any]]:
        existing = await all_registrations(client)
        report = []
        for event in events:
            url = event_url(args.url, event)
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
                json={"event": event, "url": url, "secret": secret, "retryOnError": True},
            )
            report.append(
                {"event": event, "url": url, "id": created.get("id"), "action": "created"}
            )
        return report

    report = run_with_client(settings, work)
    print_rows(report, ("event", "id", "action", "url"), args.json)
    if not args.json and any(r["action"].startswith("exists ") for r in report):
        print(
            "some pairs are registered more than once: MTA delivers those events twice;"
            " delete the extra ids (DELETE /webhooks/{id})"
        )
    return 0


def list_webhooks(args: argparse.Namespace) -> int:
    """Print every registration of the account."""
    rows = run_with_client(load_settings(), all_registrations)
    print_rows(rows, ("id", "event", "url", "retryOnError"), args.json)
    return 0


def rotate_secret(args: argparse.Namespace) -> int:
    """PATCH our registrations to a secret the receivers already accept; refuse otherwise."""
    settings = load_settings()
    new = args.new_secret or secrets.token_hex(64)  # MTA's are 128 hex characters
    accepted = [s.reveal() for s in settings.webhook_secrets]
    if new not in accepted:
        if not args.new_secret:
            print(f"generated a new secret: {new}\n")
        print(
            "refusing: the new secret is not in RECEIVER_WEBHOOK_SECRETS yet, so the"
            " receivers would reject every webhook signed with it.\n"
        )
        print(ROTATION_STEPS)
        return 1
    if args.url:
        result = asyncio.run(send_probe(args.url, new, probe_body()))
        if not result.accepted:
            print(
                f"refusing: a test webhook signed with the new secret got"
                f" {result.status or result.error} from {base_url(args.url)}; make sure"
                " every replica runs with it (step 1), then try again.\n"
            )
            print(ROTATION_STEPS)
            return 1

    async def work(client: MTAClient) -> list[dict[str, Any]]:
        changed = []
        for row in await all_registrations(client):
            if ours(row, args.url):
                await client.request("PATCH", f"webhooks/{row['id']}", json={"secret": new})
                changed.append({"id": row["id"], "event": row.get("event"), "url": row["url"]})
        return changed

    changed = run_with_client(settings, work)
    if args.json:
        print(json.dumps({"updated": changed}))
    else:
        print_rows(changed, ("id", "event", "url"), False)
        print(
            f"{len(changed)} registration(s) now use the new secret. Next: remove the old"
            " secret from RECEIVER_WEBHOOK_SECRETS and roll the replicas (step 3)."
        )
    return 0 if changed else 1
