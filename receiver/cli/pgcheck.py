"""``doctor``'s PostgreSQL checks: server settings that hurt the receiver.

- ``max_connections`` too small for the pools: every process opens up to
  ``RECEIVER_PG_POOL_SIZE`` connections plus one for its worker's wake-up listener; when
  the server runs out, webhooks are answered 503 (TooManyConnections).
- ``synchronous_commit`` or ``fsync`` off: a 200 promises the event survives a crash;
  with either off, PostgreSQL may lose the last commits after one.
"""

from __future__ import annotations

import time

from ..settings import Settings
from ..store import Store
from .checks import OK, WARN, Check

RESERVE = 5
"""Connections kept free for operators, migrations and monitoring."""
LIVE_SECONDS = 60.0
"""A heartbeat this recent counts its process as running."""


async def postgres_checks(store: Store, settings: Settings) -> list[Check]:
    """The connection-budget and durability checks; none for a backend without them."""
    try:
        health = await store.server_health(time.time() - LIVE_SECONDS, "doctor")
    except Exception as exc:
        return [Check("postgres settings", WARN, f"cannot read: {type(exc).__name__}: {exc}")]
    if health is None:
        return []
    processes = max(1, health.live_owners or 1)  # not migrated yet: count this one
    return [
        connections(health.settings, settings, processes, health.open_connections),
        durability(health.settings),
    ]


def connections(found: dict[str, str], settings: Settings, processes: int, used: int) -> Check:
    """Enough connections for every running process's pool and listener."""
    usable = int(found["max_connections"]) - int(found["superuser_reserved_connections"])
    per_process = settings.pg_pool_size + 1
    need = per_process * processes + RESERVE
    detail = (
        f"max_connections allows {usable} client connections; {processes} running"
        f" process(es) x (RECEIVER_PG_POOL_SIZE {settings.pg_pool_size} + 1 listener)"
        f" + {RESERVE} spare = {need}; {used} open now"
    )
    if usable >= need:
        return Check("postgres connections", OK, detail)
    return Check(
        "postgres connections",
        WARN,
        detail + ": webhooks get 503 once the server runs out",
        f"ALTER SYSTEM SET max_connections = {need + per_process} (restart PostgreSQL),"
        " or lower RECEIVER_PG_POOL_SIZE, or put PgBouncer in front"
        " (then RECEIVER_PG_STATEMENT_CACHE_SIZE=0 in transaction mode)",
    )


def durability(found: dict[str, str]) -> Check:
    """``synchronous_commit`` and ``fsync`` on: a 200 is durable."""
    off = [name for name in ("synchronous_commit", "fsync") if found[name] == "off"]
    if not off:
        return Check("postgres durability", OK, f"synchronous_commit {found['synchronous_commit']}")
    return Check(
        "postgres durability",
        WARN,
        f"{' and '.join(off)} off: a webhook answered 200 can be lost if PostgreSQL"
        " crashes, although MTA will not send it again",
        "; ".join(f"ALTER SYSTEM SET {name} = on" for name in off) + "; SELECT pg_reload_conf();",
    )
