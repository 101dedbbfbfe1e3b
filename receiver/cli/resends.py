"""``dead-letters``, ``resends`` and ``purge``: the operator's decisions on stuck work."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..fallback.policy import operator_drop, operator_resend
from ..store import DEAD, ResendState, Store
from .common import (
    add_json,
    add_numbers,
    duration,
    event_filter,
    load_settings,
    mask_numbers,
    print_page,
    progress,
    row_id,
    select_events,
    with_store,
)
from .events import LIST_COLUMNS

STATES = tuple(state.value for state in ResendState)
RESEND_LIST = ("original_message_id", "state", "reason", "phone", "failed_at", "sent_at")


def register(commands: Any) -> None:
    """Add ``dead-letters``, ``resends`` and ``purge``."""
    dead = commands.add_parser("dead-letters", help="events a handler gave up on")
    dead_actions = dead.add_subparsers(dest="action", required=True)
    dead_list = dead_actions.add_parser("list", help="dead-lettered events, newest first")
    dead_list.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_numbers(dead_list)
    add_json(dead_list)
    dead_list.set_defaults(func=list_dead)
    retry = dead_actions.add_parser("retry", help="run the failed handlers again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=row_id, help="one dead-lettered event")
    target.add_argument("--all", action="store_true", help="every dead-lettered event")
    add_json(retry)
    retry.set_defaults(func=retry_dead)

    resends = commands.add_parser("resends", help="SMS resends of failed iMessages")
    actions = resends.add_subparsers(dest="action", required=True)
    list_ = actions.add_parser("list", help="resends, most recently changed first")
    list_.add_argument("--state", choices=STATES, help="only resends in this state")
    list_.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_numbers(list_)
    add_json(list_)
    list_.set_defaults(func=list_resends)
    for name, help_ in (
        ("send", "send an unknown resend after all (the outbox sends it)"),
        ("drop", "never send an unknown resend"),
    ):
        action = actions.add_parser(name, help=help_)
        action.add_argument("original_id", help="the original message's MTA messageId")
        add_json(action)
        action.set_defaults(func=decide_resend, decision=name)

    purge_ = commands.add_parser(
        "purge", help="delete old finished events; blank old phone numbers and texts"
    )
    purge_.add_argument("--older-than", type=duration, required=True, help="age cutoff, e.g. 30d")
    purge_.add_argument("--dry-run", action="store_true", help="count, change nothing")
    add_json(purge_)
    purge_.set_defaults(func=purge)


def list_dead(args: argparse.Namespace) -> int:
    """Print dead-lettered events with their last error."""
    chosen = event_filter(state=DEAD)
    rows = with_store(
        load_settings(read_only=True),
        lambda store: select_events(store, chosen, args.limit + 1),
        read_only=True,
    )
    rows = mask_numbers(rows, args.show_numbers)
    print_page(rows, (*LIST_COLUMNS, "last_error"), args.json, args.limit)
    return 0


def retry_dead(args: argparse.Namespace) -> int:
    """Re-queue dead-lettered events: failed handlers run again with fresh attempts,
    those that succeeded do not. Exit 1 when nothing was dead-lettered."""

    async def work(store: Store) -> list[int]:
        if args.all:
            ids = await store.operator.dead_letter_ids()
        else:
            ids = [args.id]
        return await store.maintenance.retry_dead_letters(ids, time.time())

    retried = with_store(load_settings(), work)
    if args.json:
        print(json.dumps({"retried": retried}))
    elif retried:
        print(f"retrying {len(retried)} event(s): {', '.join(map(str, retried))}")
    else:
        print("no dead-lettered event" + ("s" if args.all else f" {args.id}"))
    return 0 if retried else 1


def list_resends(args: argparse.Namespace) -> int:
    """Print resends, optionally of one state."""
    rows = with_store(
        load_settings(read_only=True),
        lambda store: store.operator.list_resends(
            None if args.state is None else ResendState(args.state), args.limit + 1
        ),
        read_only=True,
    )
    print_page(mask_numbers(rows, args.show_numbers), RESEND_LIST, args.json, args.limit)
    return 0


def decide_resend(args: argparse.Namespace) -> int:
    """``send`` or ``drop`` one resend in state ``unknown``; exit 1 otherwise."""
    decide = operator_resend if args.decision == "send" else operator_drop

    async def work(store: Store) -> tuple[bool, str | None]:
        changed = await decide(store.resends, args.original_id, time.time())
        resend = await store.resends.get(args.original_id)
        return changed, None if resend is None else resend.state

    changed, state = with_store(load_settings(), work)
    if args.json:
        print(
            json.dumps(
                {"original_message_id": args.original_id, "changed": changed, "state": state}
            )
        )
    elif state is None:
        print(f"no resend for message {args.original_id}")
    elif changed:
        print(f"resend of {args.original_id}: {state}")
    else:
        print(f"resend of {args.original_id} is {state}: cannot {args.decision} it")
    return 0 if changed else 1


def purge(args: argparse.Namespace) -> int:
    """Delete finished events older than the cutoff and blank old personal data."""
    cutoff = time.time() - args.older_than
    settings = load_settings()
    progress(f"{'counting' if args.dry_run else 'purging'} table by table ...")
    counts = with_store(
        settings,
        lambda store: store.maintenance.purge(
            cutoff,
            dry_run=args.dry_run,
            on_table=lambda table, n: progress(f"  {table}: {n}"),
        ),
    )
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, **counts}))
        return 0
    delete, blank = ("would delete", "would blank") if args.dry_run else ("deleted", "blanked")
    print(
        f"{delete} {counts['events']} event(s); {blank} the phone numbers and texts of"
        f" {counts['sent_messages']} sent message(s) and {counts['resends']} resend(s),"
        f" and the phone numbers of {counts['messages']} message(s)"
    )
    return 0
