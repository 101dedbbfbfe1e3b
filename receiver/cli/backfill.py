"""``backfill``: store the delivery statuses whose webhooks never arrived, from MTA's
``GET /deliveries`` (receiver/backfill/, docs/backfill.md)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..logs import redact_phone
from ..settings import Settings
from ..store import Store
from .accounts import add_account, calling
from .common import add_numbers, progress, require, timestamp, with_store


def _day(value: str) -> dt.date:
    """``YYYY-MM-DD`` (an ``argparse`` type)."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-01-31: {value!r}") from None


def register(commands: Any) -> None:
    """Add ``backfill``."""
    parser = commands.add_parser(
        "backfill",
        help="store the delivery statuses MTA holds whose webhooks never arrived",
    )
    parser.add_argument("--since", type=_day, required=True, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--until", type=_day, help="last day, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument(
        "--dry-run", action="store_true", help="store nothing; list what would be stored"
    )
    add_account(parser, calls_mta=True)
    add_numbers(parser)
    parser.set_defaults(func=backfill)


def backfill(args: argparse.Namespace) -> int:
    """Run one backfill; print progress per page and a summary. Exit 1 when another
    process is backfilling."""
    from ..backfill.repair import repair
    from ..backfill.run import Summary, Window
    from ..backfill.run import backfill as dry_backfill
    from ..metrics import Metrics
    from ..services import mta_client

    settings = Settings.from_env()
    account = calling(settings, args.account).name
    until = args.until or dt.datetime.now(dt.UTC).date()
    require(args.since <= until, "--since must not be after --until")
    window = Window(args.since, until)

    def page(summary: Summary) -> None:
        progress(
            f"page {summary.pages}: {summary.rows_read} rows read, {summary.held} already"
            f" held, {len(summary.found)} {'to store' if args.dry_run else 'stored'},"
            f" {summary.unreadable} unreadable"
        )

    async def work(store: Store) -> Summary | None:
        client = mta_client(settings, Metrics(), store, account)
        try:
            country = settings.default_country_code
            if args.dry_run:
                return await dry_backfill(
                    client,
                    store,
                    window,
                    country=country,
                    dry_run=True,
                    on_page=page,
                    account=account,
                )
            return await repair(
                client, store, window, cause="cli", country=country, on_page=page, account=account
            )
        finally:
            await client.aclose()

    summary = with_store(settings, work)
    if summary is None:
        print("another process is backfilling now; try again when it is done")
        return 1
    verb = "would store" if args.dry_run else "stored"
    print(
        f"backfill {window.since}..{window.until}: {summary.rows_read} rows read,"
        f" {summary.held} already held, {len(summary.found)} {verb},"
        f" {summary.unreadable} unreadable"
    )
    for found in summary.found:
        phone = found.phone if args.show_numbers else redact_phone(found.phone)
        print(
            f"  {verb}: message {found.message_id} to {phone or '-'}: {found.status}"
            f" at {timestamp(found.at)}"
        )
    return 0
