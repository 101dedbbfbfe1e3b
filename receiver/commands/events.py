"""``events list|show`` and ``replay``: look at stored events, run their handlers again."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import operations
from ..store import EVENT_STATES, PENDING, QUARANTINED, Store
from . import queries
from .common import (
    add_json,
    duration,
    load_settings,
    print_rows,
    print_value,
    require,
    with_store,
)

LIST_COLUMNS = ("id", "name", "message_id", "phone", "state", "attempts", "received_at")


def register(commands: Any) -> None:
    """Add ``events`` (``list``, ``show``) and ``replay``."""
    events = commands.add_parser("events", help="list and show stored events")
    actions = events.add_subparsers(dest="action", required=True)
    list_ = actions.add_parser("list", help="events, newest first")
    add_filters(list_)
    add_json(list_)
    list_.set_defaults(func=list_events)
    show = actions.add_parser("show", help="one event, its handler runs and its raw body")
    show.add_argument("id", type=int, help="the event id")
    add_json(show)
    show.set_defaults(func=show_event)

    replay_ = commands.add_parser(
        "replay", help="run every handler of finished (done or dead) events again"
    )
    add_filters(replay_, with_id=True)
    replay_.add_argument(
        "--dry-run", action="store_true", help="print what would be replayed, change nothing"
    )
    add_json(replay_)
    replay_.set_defaults(func=replay)


def add_filters(parser: argparse.ArgumentParser, *, with_id: bool = False) -> None:
    """The event filters ``events list`` and ``replay`` share."""
    if with_id:
        parser.add_argument("--id", type=int, help="one event by id")
    parser.add_argument("--type", help="event type or name (delivery-status, message-reply ...)")
    parser.add_argument("--status", type=int, help="MTA delivery status code")
    parser.add_argument("--number", help="phone number (any spelling)")
    parser.add_argument("--since", type=duration, help="received within, e.g. 1h, 30m, 2d")
    parser.add_argument("--state", choices=EVENT_STATES, help="only events in this state")
    parser.add_argument(
        "--limit", type=int, default=None if with_id else 50, help="at most this many"
    )


def selector(args: argparse.Namespace) -> operations.EventFilter:
    """The `operations.EventFilter` of parsed arguments."""
    return queries.event_filter(
        type=args.type,
        status=args.status,
        number=args.number,
        since=args.since,
        state=args.state,
        limit=args.limit,
    )


def list_events(args: argparse.Namespace) -> int:
    """Print events matching the filters."""
    settings = load_settings(read_only=True)
    rows = with_store(
        settings,
        lambda store: queries.select_events(store, selector(args), args.limit),
        read_only=True,
    )
    print_rows(rows, LIST_COLUMNS, args.json)
    return 0


def show_event(args: argparse.Namespace) -> int:
    """Print one event; exit 1 when there is no such event."""
    settings = load_settings(read_only=True)
    event = with_store(settings, lambda store: queries.event_detail(store, args.id), read_only=True)
    if event is None:
        print(f"no event {args.id}")
        return 1
    if args.json:
        print(json.dumps(event, default=str))
        return 0
    runs = event.pop("handler_runs")
    raw = event.pop("raw")
    print_value(event, as_json=False)
    print("\nhandler runs:")
    print_rows(runs, ("handler", "state", "attempts", "updated_at", "last_error"), False)
    print("\nraw payload:")
    print(raw)
    return 0


def replay(args: argparse.Namespace) -> int:
    """Set matching done/dead events back to pending, handler runs cleared.

    Refuses to replay everything by accident: an id or a filter is required (exit 2).
    Exit 1 when nothing matched.
    """
    chosen = selector(args)
    filters = (args.type, args.status, args.number, args.since, args.state)
    require(
        args.id is not None or any(f is not None for f in filters),
        "replay needs --id or at least one filter (--type, --since, --state ...)",
    )
    require(
        args.state not in (PENDING, QUARANTINED),
        f"{args.state} events cannot be replayed, only done or dead ones",
    )
    settings = load_settings()

    async def work(store: Store) -> list[dict[str, Any]]:
        if args.id is not None:
            row = await queries.one_event(store, args.id)
            rows = [row] if row is not None else []
        else:
            rows = await queries.select_events(store, chosen, args.limit)
        rows = [row for row in rows if row["state"] in queries.REPLAYABLE]
        if not args.dry_run:
            done = set(await queries.replay(store, [row["id"] for row in rows]))
            rows = [row for row in rows if row["id"] in done]
        return rows

    rows = with_store(settings, work)
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "events": rows}, default=str))
    else:
        verb = "would replay" if args.dry_run else "replayed"
        print_rows(rows, LIST_COLUMNS, False)
        print(f"{verb} {len(rows)} event(s)")
    return 0 if rows else 1
