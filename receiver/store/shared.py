"""Store operations that are one shared statement (receiver/store/sql.py), written once
for both adapters on top of their own ``execute`` and ``fetch``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..mta.events import DEFAULT_ACCOUNT
from . import schema, sql
from .backfill import BackfillStore
from .maintenance import Maintenance
from .operator import Operator
from .records import MessageState
from .resends import Resends
from .schema import MigrationStatus

if TYPE_CHECKING:
    from ..mta.ratelimit import Limiter, Rate
    from .postgres.health import ServerHealth


class _Runs(Protocol):
    dialect: str

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int: ...

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    async def fetch_write(
        self, query: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]: ...


class SharedStatements:
    """Mixed into `SqliteStore` and `PostgresStore`."""

    async def renew(self: _Runs, owner: str, until: float, event_ids: Sequence[int]) -> None:
        """Extend the leases ``owner`` holds on ``event_ids`` (the worker's heartbeat, for
        the events its handlers are running: a lease it holds but no longer works on,
        say after recording a completion failed, must expire)."""
        if event_ids:
            query = f"{sql.RENEW} AND id IN ({sql.marks(event_ids)})"
            await self.execute(query, (until, owner, *event_ids))

    async def release(self: _Runs, owner: str, event_ids: Sequence[int] | None = None) -> None:
        """Give back the leases ``owner`` holds: all of them (graceful shutdown), or those
        of ``event_ids`` only."""
        if event_ids is None:
            await self.execute(sql.RELEASE, (owner,))
        elif event_ids:
            query = f"{sql.RELEASE} AND id IN ({sql.marks(event_ids)})"
            await self.execute(query, (owner, *event_ids))

    async def heartbeat(self: _Runs, owner: str, now: float | None = None) -> None:
        """Write a heartbeat row: proves the store is writable."""
        await self.execute(sql.HEARTBEAT, (owner, time.time() if now is None else now))

    async def recover(self: _Runs, owner: str, stale_before: float) -> int:
        """Release the leases of the owners (other than ``owner``) whose last heartbeat is
        older than ``stale_before``: they died, and their work need not wait for its
        leases to expire. Return how many events were released."""
        return await self.execute(sql.RECOVER, (owner, stale_before))

    async def message_state(
        self: _Runs, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> MessageState | None:
        """The forward-only state of one message of ``account``, or None when we never saw it."""
        rows = await self.fetch(sql.SELECT_MESSAGE, (account, message_id))
        return MessageState.from_row(rows[0]) if rows else None

    def describe(self: _Runs) -> str:
        """The backend's name for log lines and ``db status``: ``sqlite`` or ``postgres``."""
        return self.dialect

    @property
    def resends(self: _Runs) -> Resends:
        """The fallback's tables: resends, opt-outs, our own sends."""
        return Resends(self)

    @property
    def operator(self: _Runs) -> Operator:
        """What the dashboard, the CLI and the gauges read."""
        return Operator(self)

    @property
    def backfill(self: _Runs) -> BackfillStore:
        """The backfill's lease, run records and held-status checks."""
        return BackfillStore(self)

    @property
    def maintenance(self: _Runs) -> Maintenance:
        """The operator's actions: dead-letter retries, replays, purges."""
        return Maintenance(self)

    async def migration_status(self: _Runs) -> list[MigrationStatus]:
        """Every shipped migration of this backend, applied (when) or pending."""
        return await schema.migration_status(self, self.dialect)

    async def server_health(self, since: float, besides: str) -> ServerHealth | None:
        """PostgreSQL's health figures for ``doctor``; None for a backend without them."""
        return None

    async def vacuum_settings(self) -> dict[str, str] | None:
        """PostgreSQL's autovacuum settings (`schema.VACUUM_SETTINGS`); None elsewhere."""
        return None

    def send_limiter(self, rate: Rate, api_key: str) -> Limiter | None:
        """A ``POST /send`` limiter shared by every process using this store, for the
        account of ``api_key`` (hashed, never stored); None: keep one in memory."""
        return None
