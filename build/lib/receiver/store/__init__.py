"""Storage behind one port, `Store`, with a SQLite adapter (default) and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import ConfigError
from .records import (
    DEAD,
    DONE,
    EVENT_STATES,
    FAILED,
    PENDING,
    QUARANTINED,
    Claimed,
    Completion,
    HandlerRun,
    Incoming,
    IngestResult,
    MessageState,
)


class Store(Protocol):
    """What the app, the worker and the CLI need from storage."""

    dialect: str

    async def open(self, migrate: bool = True) -> None: ...
    async def close(self) -> None: ...
    async def ingest(self, incoming: Incoming) -> IngestResult: ...
    async def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]: ...
    async def complete(
        self, owner: str, completions: Sequence[Completion], now: float | None = None
    ) -> None: ...
    async def renew(self, owner: str, until: float, event_ids: Sequence[int]) -> None: ...
    async def release(self, owner: str, event_ids: Sequence[int] | None = None) -> None: ...
    async def heartbeat(self, owner: str, now: float | None = None) -> None: ...
    async def message_state(self, message_id: str) -> MessageState | None: ...
    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    async def fetch_write(
        self, query: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]: ...
    async def execute(self, query: str, params: Sequence[Any] = ()) -> int: ...


def create_store(url: str) -> Store:
    """The store adapter for a ``RECEIVER_DATABASE_URL``."""
    if url.startswith("sqlite:"):
        from .sqlite import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        try:
            from .postgres import PostgresStore
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise ConfigError(
                "RECEIVER_DATABASE_URL names PostgreSQL, but its driver is not installed:"
                " pip install 'mta-receiver[postgres]' (the 'postgres' extra, asyncpg)"
            ) from exc
        return PostgresStore(url)
    raise ConfigError(f"unsupported RECEIVER_DATABASE_URL scheme: {url.split(':', 1)[0]!r}")


def missing_database(url: str) -> str | None:
    """The absolute path a SQLite URL names when no file is there (None: it exists, or the
    store is PostgreSQL): reading commands must not create an empty database."""
    if not url.startswith("sqlite:"):
        return None
    from .sqlite import sqlite_path

    path = os.path.abspath(sqlite_path(url))
    return None if os.path.exists(path) else path


__all__ = [
    "DEAD",
    "DONE",
    "EVENT_STATES",
    "FAILED",
    "PENDING",
    "QUARANTINED",
    "Claimed",
    "Completion",
    "HandlerRun",
    "Incoming",
    "IngestResult",
    "MessageState",
    "Store",
    "create_store",
    "missing_database",
]
