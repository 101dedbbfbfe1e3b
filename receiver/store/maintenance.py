"""The operator's actions on stored work: dead-letter retries, replays, purges.

Every change is a conditional statement on the row's state, so an operator racing the
worker, the outbox or another operator never undoes their work: a retry only touches dead
events, a replay only finished ones, a purge never deletes a pending one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import sql
from .connector import Connector
from .records import DEAD, DONE, FAILED, PENDING, QUARANTINED, RESEND_ACTIVE

FINISHED = (DONE, DEAD, QUARANTINED)  # never PENDING: the worker owes those runs
REPLAYABLE = (DONE, DEAD)  # quarantined bodies cannot be parsed, so cannot be replayed
ACTIVE_RESENDS = tuple(sorted(RESEND_ACTIVE))


class Maintenance:
    """The operator's writes to a store."""

    __slots__ = ("_db",)

    def __init__(self, db: Connector) -> None:
        self._db = db

    async def retry_dead_letter(
        self, event_id: int, now: float, account: str | None = None
    ) -> bool:
        """Put a dead-lettered event back in the queue, due now; False when it is not dead.

        Only the handlers that died run again: their runs go back to ``failed`` with their
        attempts reset, so each gets a full ``max_attempts`` again; handlers that finished
        stay done. The event keeps its attempt count (history) and loses its lease.
        """
        return bool(await self.retry_dead_letters([event_id], now, account))

    async def retry_dead_letters(
        self, event_ids: Sequence[int], now: float, account: str | None = None
    ) -> list[int]:
        """`retry_dead_letter` for many events, 500 to a statement; the ids re-queued.
        With ``account``, only that account's events: an id of another is left alone.

        The runs are reset *before* the events: a worker can claim an event the moment it is
        pending, and must not find a ``dead`` run then (it would dead-letter it again at once).
        """
        retried: list[int] = []
        of, mine = _of(account)
        for chunk in sql.chunked(event_ids):
            marks = sql.marks(chunk)
            await self._db.execute(
                "UPDATE handler_runs SET state = ?, attempts = 0, updated_at = ? WHERE state = ?"
                f" AND event_id IN (SELECT id FROM events WHERE id IN ({marks}) AND state = ?{of})",
                (FAILED, now, DEAD, *chunk, DEAD, *mine),
            )
            rows = await self._db.fetch_write(
                "UPDATE events SET state = ?, run_after = ?, lease_owner = NULL,"
                " lease_until = NULL, finished_at = NULL"
                f" WHERE id IN ({marks}) AND state = ?{of} RETURNING id",
                (PENDING, now, *chunk, DEAD, *mine),
            )
            retried += (int(row[0]) for row in rows)
        return sorted(retried)

    async def replay(self, ids: Sequence[int], now: float, account: str | None = None) -> list[int]:
        """Set finished (done or dead) events back to pending with their handler runs
        cleared, so every handler runs again; return the ids changed. With ``account``,
        only that account's events."""
        changed: list[int] = []
        marks_states = sql.marks(REPLAYABLE)
        of, mine = _of(account)
        for chunk in sql.chunked(ids):
            marks = sql.marks(chunk)
            # Runs first: while the event is still finished no worker can claim it and find
            # stale runs; the update below then hands it over with a clean slate.
            await self._db.execute(
                "DELETE FROM handler_runs WHERE event_id IN (SELECT id FROM events WHERE id IN"
                f" ({marks}) AND state IN ({marks_states}){of})",
                (*chunk, *REPLAYABLE, *mine),
            )
            rows = await self._db.fetch_write(
                "UPDATE events SET state = ?, run_after = ?, last_error = NULL,"
                " finished_at = NULL, lease_owner = NULL, lease_until = NULL"
                f" WHERE id IN ({marks}) AND state IN ({marks_states}){of} RETURNING id",
                (PENDING, now, *chunk, *REPLAYABLE, *mine),
            )
            changed += (int(row[0]) for row in rows)
        return sorted(changed)

    async def purge(
        self,
        cutoff: float,
        *,
        dry_run: bool,
        on_table: Callable[[str, int], None] = lambda table, count: None,
        account: str | None = None,
    ) -> dict[str, int]:
        """Delete finished events received before ``cutoff`` (and their runs); blank the
        phone numbers and texts kept with older sends and resends, and the phone numbers of
        messages quiet since then. Counts per table; with ``account``, that account's rows
        only (each account may keep its data for its own time).

        Opt-outs keep their numbers: they are what stops us texting a number that said STOP.
        """
        finished, active = sql.marks(FINISHED), sql.marks(ACTIVE_RESENDS)
        of, mine = _of(account)
        # Per table: the change and the rows it applies to. The dry run counts those very
        # rows, so its figures cannot drift from what the real run does.
        plan: dict[str, tuple[str, str, tuple[Any, ...]]] = {
            "events": (
                "DELETE FROM events",
                f"received_at < ? AND state IN ({finished}){of}",
                (cutoff, *FINISHED, *mine),
            ),
            "sent_messages": (
                "UPDATE sent_messages SET phone = '', text = ''",
                f"sent_at < ? AND (phone <> '' OR text <> ''){of}",
                (cutoff, *mine),
            ),
            "resends": (
                "UPDATE resends SET phone = NULL, text = NULL",
                f"updated_at < ? AND state NOT IN ({active})"
                f" AND (phone IS NOT NULL OR text IS NOT NULL){of}",
                (cutoff, *ACTIVE_RESENDS, *mine),
            ),
            "messages": (
                "UPDATE messages SET phone = NULL",
                f"COALESCE(status_at, first_seen) < ? AND phone IS NOT NULL{of}",
                (cutoff, *mine),
            ),
        }
        counts: dict[str, int] = {}
        if not dry_run:
            _, old_events, params = plan["events"]
            await self._db.execute(
                "DELETE FROM handler_runs WHERE event_id IN"
                f" (SELECT id FROM events WHERE {old_events})",
                params,
            )
        for table, (change, where, params) in plan.items():
            if dry_run:
                found = await self._db.fetch(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
                counts[table] = int(found[0][0])
            else:
                counts[table] = await self._db.execute(f"{change} WHERE {where}", params)
            on_table(table, counts[table])  # progress: each table can take a while
        return counts


def _of(account: str | None) -> tuple[str, tuple[str, ...]]:
    """The ``AND account = ?`` condition of an action limited to one account (none for
    all), and its parameter. Every table it is used on has the column ``account``."""
    return ("", ()) if account is None else (" AND account = ?", (account,))
