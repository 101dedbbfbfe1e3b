"""Batched ingest on PostgreSQL: everything one event-loop iteration produced, one commit.

Like SQLite's writer (receiver/store/sqlite/writer.py), the webhooks that reach `ingest` during
one loop iteration are handed over together at its end (``loop.call_soon``): one
statement on one pool connection (one round trip, its own transaction) inserts all
their events with ``unnest`` and upserts their messages in a second data-modifying CTE.
Every future resolves only after COMMIT, so a 200 answered on it is durable. Several
batches may be in flight at once, each on its own pool connection (`IngestBatcher`).

PostgreSQL refuses an ``ON CONFLICT DO UPDATE`` that touches one row twice in a
statement, so items are grouped by dedup key (and by message id) in Python first, and
rows go in sorted order: concurrent batches lock rows in the same order and cannot
deadlock on each other. Their ids are still taken in arrival order (the worker's
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
# bumped), then the messages of the events inserted now, with the forward-only rules of
# sql.MESSAGE_FORWARD_ONLY. The message rows ($16-$24) are folded in Python from every
# pending item of the batch; a message none of whose events is new here is left alone
# (re-applying a duplicate's status would change nothing but cost a row version).
INGEST_BATCH = f"""
WITH arrived AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id, rows.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                $6::text[], $7::text[], $8::float8[], $9::int[], $10::bytea[],
                $11::text[], $12::float8[], $13::text[], $14::text[], $15::int[])
         AS rows({sql.EVENT_COLUMNS}, duplicates)
), landed AS (
    INSERT INTO events (id, {sql.EVENT_COLUMNS}, duplicates) OVERRIDING SYSTEM VALUE
    SELECT * FROM arrived ORDER BY dedup_key
    ON CONFLICT (dedup_key) DO UPDATE SET
        duplicates = events.duplicates + excluded.duplicates + 1
    RETURNING dedup_key, id, (xmax = 0) AS inserted
), moved AS ({sql.INSERT_MESSAGES}
    SELECT m.* FROM unnest($16::text[], $17::int[], $18::int[], $19::float8[],
                           $20::float8[], $21::text[], $22::text[], $23::text[], $24::text[])
        AS m(message_id, status, status_rank, status_at, first_seen, phone, external_id,
             sender_name, account)
    WHERE (m.account, m.message_id) IN (SELECT a.account, a.message_id FROM arrived a
                                        JOIN landed l ON l.dedup_key = a.dedup_key
                                        WHERE l.inserted)
    {sql.MESSAGE_FORWARD_ONLY}
)
SELECT landed.* FROM landed
"""


def event_rows(items: list[Incoming]) -> list[list[Any]]:
    """The 15 column arrays of `INSERT_EVENTS`: one row per distinct dedup key, in the
    order of their first arrival (the statement sorts them for its locks)."""
    first: dict[str, Incoming] = {}
    copies: dict[str, int] = {}
    for item in items:
        first.setdefault(item.dedup_key, item)
        copies[item.dedup_key] = copies.get(item.dedup_key, 0) + 1
    columns: list[list[Any]] = [[] for _ in range(15)]
    for key in first:
        item = first[key]
        row = (*item.event_row(), copies[key] - 1)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def message_rows(items: list[Incoming]) -> list[list[Any]]:
    """The 9 message column arrays of `INGEST_BATCH`: one row per (account, message id),
    sorted.

    From the pending items with a message id: the status of the highest rank (earliest
    on ties), identity fields from the first item that has them, and the earliest
    receipt as ``first_seen``.
    """
    best: dict[tuple[str, str], Incoming] = {}
    first_seen: dict[tuple[str, str], float] = {}
    identity: dict[tuple[str, str], list[str | None]] = {}
    for item in items:
        if item.message_id is None or item.state != PENDING:
            continue
        mid = (item.account, item.message_id)
        current = best.get(mid)
        if current is None or (item.status_rank, -item.received_at) > (
            current.status_rank,
            -current.received_at,
        ):
            best[mid] = item
        first_seen[mid] = min(first_seen.get(mid, item.received_at), item.received_at)
        known = identity.setdefault(mid, [None, None, None])
        for i, field in enumerate((item.phone, item.external_id, item.sender_name)):
            if known[i] is None:
                known[i] = field
    columns: list[list[Any]] = [[] for _ in range(9)]
    for mid in sorted(best):
        item = best[mid]
        phone, external_id, sender_name = identity[mid]
        row = (
            mid[1],
            item.status,
            item.status_rank,
            item.status_at,
            first_seen[mid],
            phone,
            external_id,
            sender_name,
            mid[0],
        )
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
