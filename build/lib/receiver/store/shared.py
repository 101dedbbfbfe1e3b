"""Store operations that are one shared statement (receiver/store/sql.py), written once
for both adapters on top of their own ``execute`` and ``fetch``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from . import sql
from .records import MessageState


class _Runs(Protocol):
    async def execute(self, query: str, params: Sequence[Any] = ()) -> int: ...

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


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

    async def message_state(self: _Runs, message_id: str) -> MessageState | None:
        """The forward-only state of one message, or None when we never saw it."""
        rows = await self.fetch(sql.SELECT_MESSAGE, (message_id,))
        return MessageState(*rows[0]) if rows else None
