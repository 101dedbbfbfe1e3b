"""What ``doctor`` reads from a PostgreSQL server: its settings, and how many receiver
processes beat against it (receiver/cli/pgcheck.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..connector import Connector

SERVER_SETTINGS = "SELECT name, setting FROM pg_settings WHERE name = ANY(?::text[])"
LIVE_OWNERS = "SELECT count(*) FROM heartbeats WHERE at > ? AND owner <> ?"
OPEN_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"


async def server_settings(store: Connector, names: Sequence[str]) -> dict[str, str]:
    """The current value of each named server setting (``pg_settings``)."""
    return {name: setting for name, setting in await store.fetch(SERVER_SETTINGS, (list(names),))}


async def live_owners(store: Connector, since: float, besides: str) -> int:
    """Owners (worker processes) whose heartbeat is newer than ``since``, ``besides``
    excepted."""
    [(count,)] = await store.fetch(LIVE_OWNERS, (since, besides))
    return int(count)


async def open_connections(store: Connector) -> int:
    """Client connections open on the server now, all databases."""
    [(count,)] = await store.fetch(OPEN_CONNECTIONS)
    return int(count)


SETTINGS = ("max_connections", "superuser_reserved_connections", "synchronous_commit", "fsync")


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """What ``doctor`` weighs about a PostgreSQL server."""

    settings: dict[str, str]  # the `SETTINGS` values
    open_connections: int  # client connections now, all databases
    live_owners: int | None  # worker processes beating lately (None: not migrated yet)


async def server_health(store: Connector, since: float, besides: str) -> ServerHealth:
    """The server's settings, its open connections, and the processes beating since
    ``since`` (``besides`` excepted)."""
    found = await server_settings(store, SETTINGS)
    used = await open_connections(store)
    try:
        owners: int | None = await live_owners(store, since, besides)
    except Exception:  # no heartbeats table before the first migration
        owners = None
    return ServerHealth(found, used, owners)
