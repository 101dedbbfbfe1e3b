"""``events list|show`` and ``replay``: look at stored events, run their handlers again."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..mta.events import DELIVERY_STATUS, EVENT_TYPES, UNKNOWN
from ..mta.statuses import STATUS_NAMES
from ..settings import Settings
from ..store import EVENT_STATES, PENDING, QUARANTINED, Store
from ..store.maintenance import REPLAYABLE
from ..store.operator import EventFilter
from .accounts import add_account, chosen, with_account
from .common import (
    PAGE,
    add_json,
    add_numbers,
    confirm,
    duration,
    event_filter,
    load_settings,
    mask_in_text,
    mask_numbers,
    print_page,
    print_rows,
    print_value,
    progress,
    require,
    row_id,
    select_events,
    status_code,
    with_store,
)

SHOWN = 20
"""Rows a replay prints before its count: the count is what matters."""
LIST_COLUMNS = ("id", "name", "message_id", "phone", "state", "attempts", "received_at", "source")


def register(commands: Any) -> None:
    """Add ``events`` (``list``, ``show``) and ``replay``."""
    events = commands.add_parser("events", help="list and show stored events")
    actions = events.add_subparsers(dest="action", required=True)
    list_ = actions.add_parser("list", help="events, newest first")
    add_filters(list_)
    add_numbers(list_)
    add_json(list_)
    list_.set_defaults(func=list_events)
    show = actions.add_parser("show", help="one event, its handler runs and its raw body")
    show.add_argument("id", type=row_id, help="the event id")
    add_account(show)
    add_numbers(show)
    add_json(show)
    show.set_defaults(func=show_event)

    replay_ = commands.add_parser(
        "replay", help="run every handler of finished (done or dead) events again"
    )
    add_filters(replay_, with_id=True)
    replay_.add_argument(
        "--dry-run", action="store_true", help="print what would be replayed, change nothing"
    )
    replay_.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed in scripts)"
    )
    add_numbers(replay_)
    add_json(replay_)
    replay_.set_defaults(func=replay)


def add_filters(parser: argparse.ArgumentParser, *, with_id: bool = False) -> None:
    """The event filters ``events list`` and ``replay`` share."""
    if with_id:
        parser.add_argument("--id", type=row_id, help="one event by id")
    parser.add_argument(
        "--type",
        type=event_type,
        help="event type or name (delivery-status, delivery-status.delivered, message-reply ...)",
    )
    parser.add_argument("--status", type=status_code, help="MTA delivery status code")
    parser.add_argument("--number", help="phone number (any spelling)")
    parser.add_argument("--since", type=duration, help="received within, e.g. 1h, 30m, 2d")
    parser.add_argument("--state", choices=EVENT_STATES, help="only events in this state")
    add_account(parser)
    parser.add_argument(
        "--limit", type=int, default=None if with_id else 50, help="at most this many"
    )


EVENT_NAMES = frozenset(
    {
        *EVENT_TYPES,
        UNKNOWN,
        *(f"{DELIVERY_STATUS}.{name}" for name in (*STATUS_NAMES.values(), UNKNOWN)),
    }
)


def event_type(value: str) -> str:
    """An event type or name we know (an ``argparse`` type): a typo must not answer
    ``(none)`` as if nothing had happened."""
    if value not in EVENT_NAMES:
        close = sorted(n for n in EVENT_NAMES if value in n or n in value) or sorted(EVENT_TYPES)
        raise argparse.ArgumentTypeError(f"unknown event type {value!r}; try {', '.join(close)}")
    return value


event_type.__name__ = "event type"


def selector(args: argparse.Namespace, settings: Settings) -> EventFilter:
    """The `EventFilter` of parsed arguments (``--account`` checked against ``settings``)."""
    return event_filter(
        type=args.type,
        status=args.status,
        number=args.number,
        since=args.since,
        state=args.state,
        account=chosen(settings, args.account),
        limit=args.limit,
    )


def list_events(args: argparse.Namespace) -> int:
    """Print events matching the filters."""
    settings = load_settings(read_only=True)
    chosen_events = selector(args, settings)
    rows = with_store(
        settings,
        lambda store: select_events(store, chosen_events, args.limit + 1),
        read_only=True,
    )
    columns = with_account(LIST_COLUMNS, settings, rows)
    print_page(mask_numbers(rows, args.show_numbers), columns, args.json, args.limit)
    return 0


def show_event(args: argparse.Namespace) -> int:
    """Print one event; exit 1 when there is no such event (in ``--account``)."""
    settings = load_settings(read_only=True)
    account = chosen(settings, args.account)
    event = with_store(settings, lambda store: store.operator.event_detail(args.id), read_only=True)
    if event is None or account not in (None, event["account"]):
        print(f"no event {args.id}" + (f" in account {account}" if account else ""))
        return 1
    event["raw"] = mask_in_text(event["raw"], event["phone"], args.show_numbers)
    event.update(mask_numbers([event], args.show_numbers)[0])
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
    wanted = selector(args, settings)

    async def select(store: Store) -> list[dict[str, Any]]:
        if args.id is not None:
            row = await store.operator.one_event(args.id)
            rows = [row] if row is not None else []
        else:
            rows = await select_events(store, wanted, args.limit)
        return [
            row
            for row in rows
            if row["state"] in REPLAYABLE and wanted.account in (None, row["account"])
        ]

    rows = mask_numbers(with_store(settings, select), args.show_numbers)
    if not args.json:
        print_rows(rows[:SHOWN], with_account(LIST_COLUMNS, settings, rows), False)
        if len(rows) > SHOWN:
            print(f"... and {len(rows) - SHOWN} more")
    if rows and not args.dry_run:
        if not confirm(f"replay {len(rows)} event(s)", args.yes):
            print("nothing replayed")
            return 1

        async def work(store: Store) -> set[int]:
            done: set[int] = set()
            ids = [row["id"] for row in rows]
            for start in range(0, len(ids), PAGE):
                chunk = ids[start : start + PAGE]
                done.update(await store.maintenance.replay(chunk, time.time(), wanted.account))
                if len(ids) > PAGE:
                    progress(f"replayed {len(done)} of {len(ids)}")
            return done

        done = with_store(settings, work)
        rows = [row for row in rows if row["id"] in done]
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "events": rows}, default=str))
    else:
        print(f"{'would replay' if args.dry_run else 'replayed'} {len(rows)} event(s)")
    return 0 if rows else 1
