"""The backfill's storage: which statuses are held, the ``source`` of an event, the
lease that lets one process backfill at a time, and the record of finished runs.

Backfilled events themselves go in through `Store.ingest`, the webhooks' own path (the
same dedup keys, the same forward-only message state); this module only adds to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mta.events import DEFAULT_ACCOUNT
from .connector import Connector

BACKFILL = "backfill"
WEBHOOK = "webhook"

HELD = "SELECT 1 FROM events WHERE dedup_key = ?"
MARK_SOURCE = "UPDATE events SET source = ? WHERE id = ?"
SOURCES = "SELECT id, source FROM events WHERE id IN ({marks})"
# Taken when free, expired, or already ours (a renewal); RETURNING says whether we hold it.
TAKE_LEASE = """
INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE leases.until < ? OR leases.owner = excluded.owner
RETURNING owner
"""
RELEASE_LEASE = "DELETE FROM leases WHERE name = ? AND owner = ?"
# The freshest sign of life of a process that runs the worker (the doctor's and other
# one-off commands' heartbeats say nothing about webhooks being taken in).
LAST_HEARTBEAT = "SELECT MAX(at) FROM heartbeats WHERE owner LIKE 'worker-%'"
RECORD_RUN = """
INSERT INTO backfill_runs (cause, since, until, started_at, finished_at, rows_read, held,
                           stored, unreadable, error, account)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
LAST_RUN = """
SELECT cause, since, until, started_at, finished_at, rows_read, held, stored, unreadable,
       error, account
FROM backfill_runs ORDER BY id DESC LIMIT 1
"""
LAST_SUCCESS = "SELECT MAX(finished_at) FROM backfill_runs WHERE error IS NULL"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished backfill run."""

    cause: str
    since: str
    until: str
    started_at: float
    finished_at: float
    rows_read: int
    held: int
    stored: int
    unreadable: int
    error: str | None = None
    account: str = DEFAULT_ACCOUNT


class BackfillStore:
    """Typed access to what the backfill keeps in a store (``store.backfill``)."""

    def __init__(self, store: Connector) -> None:
        self.store = store

    async def held(self, dedup_key: str) -> bool:
        """Whether an event with this dedup key is stored (a webhook's or a backfill's)."""
        return bool(await self.store.fetch(HELD, (dedup_key,)))

    async def mark_backfilled(self, event_id: int) -> None:
        """Mark a stored event as read back from MTA rather than posted by it."""
        await self.store.execute(MARK_SOURCE, (BACKFILL, event_id))

    async def sources(self, event_ids: list[int]) -> dict[int, str]:
        """The ``source`` of each of these events."""
        if not event_ids:
            return {}
        marks = ", ".join("?" * len(event_ids))
        rows = await self.store.fetch(SOURCES.format(marks=marks), event_ids)
        return {int(event_id): str(source) for event_id, source in rows}

    async def take_lease(self, name: str, owner: str, now: float, seconds: float) -> bool:
        """Hold the lease ``name`` until ``now + seconds``; False when another holds it."""
        rows = await self.store.fetch_write(TAKE_LEASE, (name, owner, now + seconds, now))
        return bool(rows) and rows[0][0] == owner

    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up (if we still hold it)."""
        await self.store.execute(RELEASE_LEASE, (name, owner))

    async def last_heartbeat(self) -> float | None:
        """When a worker process last showed it was alive, or None (never)."""
        rows = await self.store.fetch(LAST_HEARTBEAT)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def record_run(self, run: RunRecord) -> None:
        """Keep the record of a finished run."""
        await self.store.execute(
            RECORD_RUN,
            (
                run.cause,
                run.since,
                run.until,
                run.started_at,
                run.finished_at,
                run.rows_read,
                run.held,
                run.stored,
                run.unreadable,
                run.error,
                run.account,
            ),
        )

    async def last_run(self) -> RunRecord | None:
        """The latest finished run, or None."""
        rows = await self.store.fetch(LAST_RUN)
        return RunRecord(*rows[0]) if rows else None

    async def last_success(self) -> float | None:
        """When the latest run without an error finished, or None."""
        rows = await self.store.fetch(LAST_SUCCESS)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None
