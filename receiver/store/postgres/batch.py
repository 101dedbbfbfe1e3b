"""Batched ingest on PostgreSQL: everything one event-loop iteration produced, one commit.

Like SQLite's writer (receiver/store/sqlite/writer.py), the webhooks that reach `ingest` during
one loop iteration are handed over together at its end (``loop.call_soon``): one
statement on one pool connection (one round trip, its own transaction) inserts all
their events with ``unnest`` and upserts their messages in a second data-modifying CTE.
Every future resolves only after COMMIT, so a 200 answered on it is durable. Several
batches may be in flight at once, each on its own pool connection (`IngestBatcher`).

PostgreSQL refuses an ``ON CONFLICT DO UPDATE`` that touches one row twice in a
statement, so items are grouped by dedup key in Python and by message in the
statement, and rows go in sorted order: concurrent batches lock rows in the same order
and cannot deadlock on each other. Their ids are still taken in arrival order (the worker's
receipt order per message is id order): from the sequence, row by row as they arrive,
before the rows are sorted for the insert. If a batch fails, each of its items runs
alone on the one-row path, so one bad item fails only itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import sql
from ..records import PENDING, Incoming, IngestResult
from .gather import Gathered

log = logging.getLogger("receiver.store")

# One statement, one round trip, its own transaction, for the whole batch: the events
# (one row per distinct dedup key, ``duplicates`` preset to its extra copies in the
# batch; ``xmax = 0`` tells a row inserted now from one that existed and was only
# bumped), then one row per message of the pending events, folded here as the one-row
# path would fold them one by one (the status of the highest rank, the earliest on
# ties; the earliest receipt as ``first_seen``; identity fields from the first event
# that has them), with the forward-only rules of sql.MESSAGE_FORWARD_ONLY. A message
# none of whose events is new here is left alone (re-applying a duplicate's status
# would change nothing but cost a row version). Folding in SQL rather than in Python
# sends each value once: every array element costs the driver an encoding step.
INGEST_BATCH = f"""
WITH arrived AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id, rows.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                $6::text[], $7::text[], $8::float8[], $9::int[], $10::bytea[],
                $11::text[], $12::float8[], $13::text[], $14::text[], $15::int[],
                $16::int[], $17::text[])
         AS rows({sql.EVENT_COLUMNS}, duplicates, status_rank, sender_name)
), landed AS (
    INSERT INTO events (id, {sql.EVENT_COLUMNS}, duplicates) OVERRIDING SYSTEM VALUE
    SELECT id, {sql.EVENT_COLUMNS}, duplicates FROM arrived ORDER BY dedup_key
    ON CONFLICT (dedup_key) DO UPDATE SET
        duplicates = events.duplicates + excluded.duplicates + 1
    RETURNING dedup_key, id, (xmax = 0) AS inserted
), moved AS ({sql.INSERT_MESSAGES}
    SELECT a.message_id,
           (array_agg(a.status ORDER BY a.status_rank DESC, a.received_at, a.id))[1],
           max(a.status_rank),
           (array_agg(CASE WHEN a.status IS NOT NULL THEN a.received_at END
                      ORDER BY a.status_rank DESC, a.received_at, a.id))[1],
           min(a.received_at),
           (array_agg(a.phone ORDER BY a.id) FILTER (WHERE a.phone IS NOT NULL))[1],
           (array_agg(a.external_id ORDER BY a.id) FILTER (WHERE a.external_id IS NOT NULL))[1],
           (array_agg(a.sender_name ORDER BY a.id) FILTER (WHERE a.sender_name IS NOT NULL))[1],
           a.account
    FROM arrived a
    WHERE a.message_id IS NOT NULL AND a.state = '{PENDING}'
    GROUP BY a.account, a.message_id
    HAVING bool_or(a.dedup_key IN (SELECT dedup_key FROM landed WHERE inserted))
    ORDER BY a.account, a.message_id
    {sql.MESSAGE_FORWARD_ONLY}
)
SELECT landed.* FROM landed
"""


def event_rows(items: list[Incoming]) -> list[list[Any]]:
    """The 17 column arrays of `INGEST_BATCH`: one row per distinct dedup key, in the
    order of their first arrival (the statement sorts them for its locks)."""
    first: dict[str, Incoming] = {}
    copies: dict[str, int] = {}
    for item in items:
        first.setdefault(item.dedup_key, item)
        copies[item.dedup_key] = copies.get(item.dedup_key, 0) + 1
    columns: list[list[Any]] = [[] for _ in range(17)]
    for key in first:
        item = first[key]
        row = (*item.event_row(), copies[key] - 1, item.status_rank, item.sender_name)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


class IngestBatcher(Gathered[Incoming, IngestResult]):
    """Collects each loop iteration's webhooks and commits them as one batch, at most
    ``max_in_flight`` batches at once (`Gathered`). A lone webhook takes the one-row
    statement; if a batch fails, each of its webhooks runs alone, so one bad item fails
    only itself."""

    def __init__(
        self,
        run_batch: Callable[[list[Incoming]], Awaitable[list[IngestResult]]],
        run_one: Callable[[Incoming], Awaitable[IngestResult]],
        max_in_flight: int = 4,
    ) -> None:
        super().__init__(self._ingest, max_in_flight)
        self._run_batch = run_batch
        self._run_one = run_one

    async def _ingest(self, items: list[Incoming]) -> list[IngestResult | BaseException]:
        if len(items) == 1:
            return [await self._run_one(items[0])]  # its failure is its own
        try:
            return list(await self._run_batch(items))
        except Exception as exc:
            log.warning("ingest batch of %d failed (%s); one by one", len(items), exc)
            return await asyncio.gather(
                *(self._run_one(item) for item in items), return_exceptions=True
            )
