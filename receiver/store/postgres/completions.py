"""Completions recorded in batches: one statement per event-loop iteration.

The worker's handlers that finish during the same loop iteration hand their completions
over together (`Gathered`), and one statement records them all: one round trip, whatever
their number. Each submitter resumes only once its completion is recorded (or the batch
failed: then every one of them sees the error, and their leases expire or are
recovered, so the events run again). SQLite needs none of this: its writer already
commits everything one loop iteration submits together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..records import PENDING, Completion
from . import statements as pg_sql

log = logging.getLogger("receiver.store")

Submitted = tuple[Sequence[Completion], "float | None"]
"""One `complete` call: its completions and its time."""
Fetch = Callable[..., Awaitable[list[Any]]]
"""Runs one statement with ``$n`` parameters; its rows."""


async def record(fetch: Fetch, owner: str, calls: list[Submitted]) -> list[None]:
    """One statement for the completions of every call (the batch's time is its first
    call's); an event another owner took over meanwhile keeps that owner's record (its
    completion here is dropped with a warning)."""
    done_now = [done for completions, _ in calls for done in completions]
    if done_now:
        given = calls[0][1]
        await _record(fetch, owner, done_now, time.time() if given is None else given)
    return [None] * len(calls)


async def _record(fetch: Fetch, owner: str, completions: list[Completion], now: float) -> None:
    by_id = {done.event_id: done for done in completions}  # one row per event
    ordered = [by_id[event_id] for event_id in sorted(by_id)]
    runs = [(done.event_id, run) for done in ordered for run in done.runs]
    finished = await fetch(
        pg_sql.COMPLETE,
        owner,
        [done.event_id for done in ordered],
        [done.state for done in ordered],
        [done.run_after for done in ordered],
        [done.last_error for done in ordered],
        [None if done.state == PENDING else now for done in ordered],
        [event_id for event_id, _ in runs],
        [run.handler for _, run in runs],
        [run.state for _, run in runs],
        [run.attempts for _, run in runs],
        [run.last_error for _, run in runs],
        now,
    )
    for lost in sorted(set(by_id) - {row[0] for row in finished}):
        # Another worker owns the event now: its record of runs wins.
        log.warning("event %d: lease lost before completion; results dropped", lost)
