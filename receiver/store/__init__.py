"""Storage behind one port, `Store`, with a SQLite adapter (default) and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from ..mta.events import DEFAULT_ACCOUNT
from .records import (
    DEAD,
    DONE,
    EVENT_STATES,
    FAILED,
    MAX_ID,
    PENDING,
    QUARANTINED,
    Claimed,
    Completion,
    HandlerRun,
    Incoming,
    IngestResult,
    MessageState,
    Resend,
    ResendState,
)

if TYPE_CHECKING:
    from ..mta.ratelimit import Limiter, Rate
    from .backfill import BackfillStore
    from .maintenance import Maintenance
    from .operator import Operator
    from .postgres.health import ServerHealth
    from .resends import Resends
    from .schema import MigrationStatus


class Store(Protocol):
    """What the app, the worker, the fallback and the operator tools need from storage:
    typed operations and repositories only. Statements stay inside ``receiver/store/``
    (each adapter is a `connector.Connector` for its repositories)."""

    async def open(self, migrate: bool = True) -> None:
        """Connect; with ``migrate``, bring the schema up to date first."""
        ...

    async def close(self) -> None:
        """Let queued writes finish, then close every connection."""
        ...

    async def warm(self, worker: bool) -> None:
        """Get ready for traffic before the first webhook arrives (connections opened,
        their statements prepared), the worker's part too with ``worker``."""
        ...

    async def ingest(self, incoming: Incoming) -> IngestResult:
        """Commit one authentic webhook (or count it a duplicate) before we answer 200."""
        ...

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another process commits events (PostgreSQL's
        LISTEN/NOTIFY); returns at once where commits are seen in-process (SQLite)."""
        ...

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due events to ``owner``, in receipt order per message."""
        ...

    async def complete(
        self, owner: str, completions: Sequence[Completion], now: float | None = None
    ) -> None:
        """Record what ``owner`` decided about events it still holds."""
        ...

    async def renew(self, owner: str, until: float, event_ids: Sequence[int]) -> None:
        """Extend ``owner``'s leases on ``event_ids``."""
        ...

    async def release(self, owner: str, event_ids: Sequence[int] | None = None) -> None:
        """Give back ``owner``'s leases (all, or those of ``event_ids``)."""
        ...

    async def heartbeat(self, owner: str, now: float | None = None) -> None:
        """Write a heartbeat row: proves the store takes writes."""
        ...

    async def recover(self, owner: str, stale_before: float) -> int:
        """Release the leases of owners whose last heartbeat is older than
        ``stale_before`` (dead processes), never ``owner``'s; how many were released."""
        ...

    async def message_state(
        self, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> MessageState | None:
        """The forward-only state of one message of ``account``, or None when never seen."""
        ...

    def describe(self) -> str:
        """The backend's name for log lines and ``db status``."""
        ...

    @property
    def resends(self) -> Resends:
        """The fallback's tables: resends, opt-outs, our own sends."""
        ...

    @property
    def operator(self) -> Operator:
        """What the dashboard, the CLI and the /metrics gauges read."""
        ...

    @property
    def backfill(self) -> BackfillStore:
        """The backfill's lease, run records and held-status checks."""
        ...

    @property
    def maintenance(self) -> Maintenance:
        """The operator's actions: dead-letter retries, replays, purges."""
        ...

    async def migration_status(self) -> list[MigrationStatus]:
        """Every shipped migration of this backend, applied (when) or pending."""
        ...

    async def server_health(self, since: float, besides: str) -> ServerHealth | None:
        """PostgreSQL's settings, open connections and processes beating since ``since``
        (``besides`` excepted), for ``doctor``; None for a backend without them."""
        ...

    async def vacuum_settings(self) -> dict[str, str] | None:
        """PostgreSQL's autovacuum settings; None for a backend without them."""
        ...

    def send_limiter(self, rate: Rate, api_key: str) -> Limiter | None:
        """A ``POST /send`` limiter shared through this store; None: keep one in memory."""
        ...


def create_store(
    url: str, *, pool_size: int | None = None, statement_cache_size: int | None = None
) -> Store:
    """The store adapter for a ``RECEIVER_DATABASE_URL``; the PostgreSQL pool's size and
    per-connection statement cache (``RECEIVER_PG_*``) where given."""
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
        return PostgresStore(
            url,
            **({"max_size": pool_size} if pool_size is not None else {}),
            **(
                {"statement_cache_size": statement_cache_size}
                if statement_cache_size is not None
                else {}
            ),
        )
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
    "MAX_ID",
    "PENDING",
    "QUARANTINED",
    "Claimed",
    "Completion",
    "HandlerRun",
    "Incoming",
    "IngestResult",
    "MessageState",
    "Resend",
    "ResendState",
    "Store",
    "create_store",
    "missing_database",
]
