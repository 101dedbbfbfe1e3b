"""What the operator commands need beyond `receiver.operations` (which they reuse for
listing events, dead-letter retries and resend decisions): an event's body and runs,
replays, resend listings by state, purges. ``?`` placeholders, portable SQL.

Every change is a conditional statement on the row's state, so a command racing the
worker or the outbox never undoes their work: a replay only touches finished events, a
purge never deletes a pending one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from .. import operations
from ..fallback.resends import RECONCILING, SCHEDULED, SENDING
from ..store import DEAD, DONE, PENDING, QUARANTINED, Store, sql

EVENT_COLUMNS = (
    "id",
    "type",
    "name",
    "message_id",
    "status",
    "external_id",
    "phone",
    "state",
    "attempts",
    "duplicates",
    "received_at",
    "finished_at",
    "last_error",
    "source",
)
RESEND_COLUMNS = (
    "original_message_id",
    "state",
    "reason",
    "phone",
    "failure_status",
    "failed_at",
    "due_at",
    "attempts",
    "sent_at",
    "resend_message_id",
    "double_delivery",
)
FINISHED = (DONE, DEAD, QUARANTINED)  # never PENDING: the worker owes those runs
REPLAYABLE = (DONE, DEAD)  # quarantined bodies cannot be parsed, so cannot be replayed
PAGE = 500
ACTIVE_RESENDS = (SCHEDULED, SENDING, RECONCILING)


def event_filter(
    *,
    type: str | None = None,
    status: int | None = None,
    number: str | None = None,
    since: float | None = None,
    state: str | None = None,
    limit: int = 50,
) -> operations.EventFilter:
    """`operations.EventFilter` from CLI values (``since`` in seconds back from now)."""
    start = None if since is None else time.time() - since
    return operations.EventFilter(
        type=type, status=status, number=number, since=start, state=state, limit=limit
    )


async def select_events(
    store: Store, filters: operations.EventFilter, limit: int | None
) -> list[dict[str, Any]]:
    """Events matching ``filters``, newest first, as dicts; ``limit`` None pages through
    all of them (`operations.list_events` answers at most 500 at a time)."""
    found: list[operations.EventRow] = []
    while limit is None or len(found) < limit:
        page = min(500, PAGE if limit is None else limit - len(found))
        before = found[-1].id if found else None
        rows = await operations.list_events(
            store, dataclasses.replace(filters, limit=page, before_id=before)
        )
        found += rows
        if len(rows) < page:
            break
    return [dataclasses.asdict(row) for row in found]


async def one_event(store: Store, event_id: int) -> dict[str, Any] | None:
    """The operator's row of one event, or None."""
    rows = await store.fetch(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE id = ?", (event_id,)
    )
    return dict(zip(EVENT_COLUMNS, rows[0], strict=True)) if rows else None


async def event_detail(store: Store, event_id: int) -> dict[str, Any] | None:
    """One event with its handler runs and its raw body (text when it decodes)."""
    rows = await store.fetch(
        f"SELECT {', '.join(EVENT_COLUMNS)}, body FROM events WHERE id = ?", (event_id,)
    )
    if not rows:
        return None
    event = dict(zip((*EVENT_COLUMNS, "body"), rows[0], strict=True))
    body = bytes(event.pop("body"))
    event["raw"] = body.decode("utf-8", errors="replace")
    runs = await store.fetch(
        "SELECT handler, state, attempts, last_error, updated_at FROM handler_runs"
        " WHERE event_id = ? ORDER BY handler",
        (event_id,),
    )
    event["handler_runs"] = [
        dict(zip(("handler", "state", "attempts", "last_error", "updated_at"), r, strict=True))
        for r in runs
    ]
    return event


async def replay(store: Store, ids: list[int]) -> list[int]:
    """Set finished (done or dead) events back to pending with their handler runs
    cleared, so every handler runs again; return the ids changed."""
    changed: list[int] = []
    marks_states = sql.marks(REPLAYABLE)
    for chunk in sql.chunked(ids):
        marks = sql.marks(chunk)
        # Runs first: while the event is still finished no worker can claim it and find
        # stale runs; the update below then hands it over with a clean slate.
        await store.execute(
            "DELETE FROM handler_runs WHERE event_id IN (SELECT id FROM events WHERE id IN"
            f" ({marks}) AND state IN ({marks_states}))",
            (*chunk, *REPLAYABLE),
        )
        rows = await store.fetch_write(
            "UPDATE events SET state = ?, run_after = ?, last_error = NULL,"
            " finished_at = NULL, lease_owner = NULL, lease_until = NULL"
            f" WHERE id IN ({marks}) AND state IN ({marks_states}) RETURNING id",
            (PENDING, time.time(), *chunk, *REPLAYABLE),
        )
        changed += (int(row[0]) for row in rows)
    return sorted(changed)


async def list_resends(store: Store, state: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """Resends, most recently changed first."""
    where, params = ("", []) if state is None else (" WHERE state = ?", [state])
    rows = await store.fetch(
        f"SELECT {', '.join(RESEND_COLUMNS)} FROM resends{where} ORDER BY updated_at DESC LIMIT ?",
        (*params, limit),
    )
    return [dict(zip(RESEND_COLUMNS, row, strict=True)) for row in rows]


async def purge(
    store: Store,
    cutoff: float,
    *,
    dry_run: bool,
    on_table: Callable[[str, int], None] = lambda table, count: None,
) -> dict[str, int]:
    """Delete finished events received before ``cutoff`` (and their runs); blank the
    phone numbers and texts kept with older sends and resends, and the phone numbers of
    messages quiet since then. Counts per table.

    Opt-outs keep their numbers: they are what stops us texting a number that said STOP.
    """
    finished, active = sql.marks(FINISHED), sql.marks(ACTIVE_RESENDS)
    # Per table: the change and the rows it applies to. The dry run counts those very
    # rows, so its figures cannot drift from what the real run does.
    plan: dict[str, tuple[str, str, tuple[Any, ...]]] = {
        "events": (
            "DELETE FROM events",
            f"received_at < ? AND state IN ({finished})",
            (cutoff, *FINISHED),
        ),
        "sent_messages": (
            "UPDATE sent_messages SET phone = '', text = ''",
            "sent_at < ? AND (phone <> '' OR text <> '')",
            (cutoff,),
        ),
        "resends": (
            "UPDATE resends SET phone = NULL, text = NULL",
            f"updated_at < ? AND state NOT IN ({active})"
            " AND (phone IS NOT NULL OR text IS NOT NULL)",
            (cutoff, *ACTIVE_RESENDS),
        ),
        "messages": (
            "UPDATE messages SET phone = NULL",
            "COALESCE(status_at, first_seen) < ? AND phone IS NOT NULL",
            (cutoff,),
        ),
    }
    counts: dict[str, int] = {}
    if not dry_run:
        _, old_events, params = plan["events"]
        await store.execute(
            "DELETE FROM handler_runs WHERE event_id IN"
            f" (SELECT id FROM events WHERE {old_events})",
            params,
        )
    for table, (change, where, params) in plan.items():
        if dry_run:
            found = await store.fetch(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
            counts[table] = int(found[0][0])
        else:
            counts[table] = await store.execute(f"{change} WHERE {where}", params)
        on_table(table, counts[table])  # progress: each table can take a while
    return counts
