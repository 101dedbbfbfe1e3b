"""``db upgrade`` and ``db status``: the schema migrations of the configured store.

The receiver applies missing migrations itself at start-up (under SQLite's write lock
or PostgreSQL's advisory lock, so replicas starting together do not race); these
commands let a deploy migrate first and check the result.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..store import Store
from ..store.schema import MigrationStatus
from .common import add_json, load_settings, timestamp, with_store


def register(commands: Any) -> None:
    """Add ``db upgrade`` and ``db status``."""
    db = commands.add_parser("db", help="schema migrations of RECEIVER_DATABASE_URL")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade_ = actions.add_parser("upgrade", help="apply the missing migrations")
    upgrade_.set_defaults(func=upgrade)
    status_ = actions.add_parser("status", help="list migrations: applied or pending")
    add_json(status_)
    status_.add_argument("--check", action="store_true", help="exit 1 when any is pending")
    status_.set_defaults(func=status)


def upgrade(args: argparse.Namespace) -> int:
    """Apply what is missing; print what was applied."""
    settings = load_settings()
    _, before = with_store(settings, _status, migrate=False)
    backend, after = with_store(settings, _status)  # opening the store migrates it
    pending = {m.version for m in before if m.applied_at is None}
    applied = [m for m in after if m.version in pending and m.applied_at is not None]
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    print(f"{backend}: schema at version {max((m.version for m in after), default=0):04d}")
    return 0 if all(m.applied_at is not None for m in after) else 1


def status(args: argparse.Namespace) -> int:
    """Print each migration: applied (when) or pending."""
    backend, found = with_store(load_settings(read_only=True), _status, read_only=True)
    pending = [m for m in found if m.applied_at is None]
    if args.json:
        print(json.dumps({"store": backend, "migrations": [asdict(m) for m in found]}))
    else:
        print(f"store: {backend}")
        for m in found:
            when = "pending" if m.applied_at is None else f"applied {timestamp(m.applied_at)}"
            print(f"{m.version:04d}  {m.name:<24} {when}")
        print(f"{len(pending)} pending" if pending else "up to date")
    return 1 if args.check and pending else 0


async def _status(store: Store) -> tuple[str, list[MigrationStatus]]:
    return store.describe(), await store.migration_status()
