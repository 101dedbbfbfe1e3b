"""``dead-letters``, ``resends`` and ``purge``: the operator's decisions on stuck work."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..errors import ConfigError
from ..fallback.policy import operator_drop, operator_resend
from ..settings import Settings
from ..store import DEAD, Resend, ResendState, Store
from .accounts import add_account, chosen, known, shows_accounts, with_account
from .common import (
    add_json,
    add_numbers,
    duration,
    event_filter,
    load_settings,
    mask_numbers,
    print_page,
    print_rows,
    progress,
    row_id,
    select_events,
    with_store,
)
from .events import LIST_COLUMNS

STATES = tuple(state.value for state in ResendState)
RESEND_LIST = ("original_message_id", "state", "reason", "phone", "failed_at", "sent_at")
SHOW_COLUMNS = ("account", *RESEND_LIST[:5], "due_at", "sent_at", "attempts", "resend_message_id")


def register(commands: Any) -> None:
    """Add ``dead-letters``, ``resends`` and ``purge``."""
    dead = commands.add_parser("dead-letters", help="events a handler gave up on")
    dead_actions = dead.add_subparsers(dest="action", required=True)
    dead_list = dead_actions.add_parser("list", help="dead-lettered events, newest first")
    dead_list.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_account(dead_list)
    add_numbers(dead_list)
    add_json(dead_list)
    dead_list.set_defaults(func=list_dead)
    retry = dead_actions.add_parser("retry", help="run the failed handlers again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=row_id, help="one dead-lettered event")
    target.add_argument("--all", action="store_true", help="every dead-lettered event")
    add_account(retry)
    add_json(retry)
    retry.set_defaults(func=retry_dead)

    resends = commands.add_parser("resends", help="SMS resends of failed iMessages")
    actions = resends.add_subparsers(dest="action", required=True)
    list_ = actions.add_parser("list", help="resends, most recently changed first")
    list_.add_argument("--state", choices=STATES, help="only resends in this state")
    list_.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_account(list_)
    add_numbers(list_)
    add_json(list_)
    list_.set_defaults(func=list_resends)
    show = actions.add_parser("show", help="the resend of one message, in each account it has one")
    show.add_argument("original_id", help="the original message's MTA messageId")
    add_account(show)
    add_numbers(show)
    add_json(show)
    show.set_defaults(func=show_resend)
    for name, help_ in (
        ("send", "send an unknown resend after all (the outbox sends it)"),
        ("drop", "never send an unknown resend"),
    ):
        action = actions.add_parser(name, help=help_)
        action.add_argument("original_id", help="the original message's MTA messageId")
        action.add_argument(
            "--account",
            metavar="NAME",
            help="the account of the message (needed when several have one of this id)",
        )
        add_json(action)
        action.set_defaults(func=decide_resend, decision=name)

    purge_ = commands.add_parser(
        "purge", help="delete old finished events; blank old phone numbers and texts"
    )
    purge_.add_argument("--older-than", type=duration, required=True, help="age cutoff, e.g. 30d")
    purge_.add_argument("--dry-run", action="store_true", help="count, change nothing")
    add_account(purge_)
    add_json(purge_)
    purge_.set_defaults(func=purge)


def list_dead(args: argparse.Namespace) -> int:
    """Print dead-lettered events with their last error."""
    settings = load_settings(read_only=True)
    dead = event_filter(state=DEAD, account=chosen(settings, args.account))
    rows = with_store(
        settings,
        lambda store: select_events(store, dead, args.limit + 1),
        read_only=True,
    )
    rows = mask_numbers(rows, args.show_numbers)
    columns = with_account((*LIST_COLUMNS, "last_error"), settings, rows)
    print_page(rows, columns, args.json, args.limit)
    return 0


def retry_dead(args: argparse.Namespace) -> int:
    """Re-queue dead-lettered events: failed handlers run again with fresh attempts,
    those that succeeded do not. With ``--account``, that account's only. Exit 1 when
    nothing was dead-lettered."""
    settings = load_settings()
    account = chosen(settings, args.account)

    async def work(store: Store) -> list[int]:
        if args.all:
            ids = await store.operator.dead_letter_ids(account)
        else:
            ids = [args.id]
        return await store.maintenance.retry_dead_letters(ids, time.time(), account)

    retried = with_store(settings, work)
    if args.json:
        print(json.dumps({"retried": retried}))
    elif retried:
        print(f"retrying {len(retried)} event(s): {', '.join(map(str, retried))}")
    else:
        where = f" in account {account}" if account else ""
        print("no dead-lettered event" + ("s" if args.all else f" {args.id}") + where)
    return 0 if retried else 1


def list_resends(args: argparse.Namespace) -> int:
    """Print resends, optionally of one state and one account."""
    settings = load_settings(read_only=True)
    account = chosen(settings, args.account)
    rows = with_store(
        settings,
        lambda store: store.operator.list_resends(
            None if args.state is None else ResendState(args.state), args.limit + 1, account
        ),
        read_only=True,
    )
    columns = with_account(RESEND_LIST, settings, rows)
    print_page(mask_numbers(rows, args.show_numbers), columns, args.json, args.limit)
    return 0


async def resends_of(
    store: Store, settings: Settings, original_id: str, account: str | None
) -> list[Resend]:
    """The resends of message ``original_id``: in ``account``, or in each account that
    has one (message ids are per account, so several may)."""
    names = known(settings) if account is None else (account,)
    found = [await store.resends.get(original_id, name) for name in names]
    return [resend for resend in found if resend is not None]


def show_resend(args: argparse.Namespace) -> int:
    """Print the resend(s) of one message; exit 1 when there is none."""
    settings = load_settings(read_only=True)
    account = chosen(settings, args.account)
    found = with_store(
        settings,
        lambda store: resends_of(store, settings, args.original_id, account),
        read_only=True,
    )
    rows = mask_numbers([resend_row(resend) for resend in found], args.show_numbers)
    if rows or args.json:
        print_rows(rows, SHOW_COLUMNS, args.json)
    else:
        print(f"no resend for message {args.original_id}")
    return 0 if rows else 1


def resend_row(resend: Resend) -> dict[str, object]:
    """One resend as a row of `show_resend`."""
    return {
        "account": resend.account,
        "original_message_id": resend.original_message_id,
        "state": str(resend.state),
        "reason": resend.reason,
        "phone": resend.phone,
        "failed_at": resend.failed_at,
        "due_at": resend.due_at,
        "sent_at": resend.sent_at,
        "attempts": resend.attempts,
        "resend_message_id": resend.resend_message_id,
    }


def decide_resend(args: argparse.Namespace) -> int:
    """``send`` or ``drop`` one resend in state ``unknown``; exit 1 otherwise. Without
    ``--account`` the message's resend must be in one account only (exit 2 otherwise)."""
    decide = operator_resend if args.decision == "send" else operator_drop
    settings = load_settings()
    account = chosen(settings, args.account)

    async def work(store: Store) -> tuple[bool, str | None, str | None]:
        found = await resends_of(store, settings, args.original_id, account)
        if len(found) > 1:
            names = ", ".join(resend.account for resend in found)
            raise ConfigError(
                f"message {args.original_id} has a resend in accounts {names}: pass --account NAME"
            )
        if not found:
            return False, None, account
        owner = found[0].account
        changed = await decide(store.resends, args.original_id, time.time(), owner)
        resend = await store.resends.get(args.original_id, owner)
        return changed, None if resend is None else resend.state, owner

    changed, state, owner = with_store(settings, work)
    of = f" ({owner})" if shows_accounts(settings, [{"account": owner}]) else ""
    if args.json:
        print(
            json.dumps(
                {
                    "original_message_id": args.original_id,
                    "account": owner,
                    "changed": changed,
                    "state": state,
                }
            )
        )
    elif state is None:
        where = f" in account {account}" if account else ""
        print(f"no resend for message {args.original_id}{where}")
    elif changed:
        print(f"resend of {args.original_id}{of}: {state}")
    else:
        print(f"resend of {args.original_id}{of} is {state}: cannot {args.decision} it")
    return 0 if changed else 1


def purge(args: argparse.Namespace) -> int:
    """Delete finished events older than the cutoff and blank old personal data."""
    cutoff = time.time() - args.older_than
    settings = load_settings()
    account = chosen(settings, args.account)
    progress(f"{'counting' if args.dry_run else 'purging'} table by table ...")
    counts = with_store(
        settings,
        lambda store: store.maintenance.purge(
            cutoff,
            dry_run=args.dry_run,
            on_table=lambda table, n: progress(f"  {table}: {n}"),
            account=account,
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
