"""PostgreSQL's ingest batcher: while its commits are all under way, webhooks gather
into the next batch instead of queueing one small batch each."""

from __future__ import annotations

import asyncio

from receiver.store import Incoming, IngestResult
from receiver.store.postgres.batch import IngestBatcher

from ..conftest import delivery
from .test_store import incoming


async def test_webhooks_gather_while_every_commit_is_under_way() -> None:
    """One commit at most: the first webhook commits alone, the five that arrive over
    several loop iterations meanwhile commit together once it is done."""
    gate, batches = asyncio.Event(), []

    async def run_one(item: Incoming) -> IngestResult:
        batches.append([item.message_id])
        await gate.wait()
        return IngestResult(1, False)

    async def run_batch(items: list[Incoming]) -> list[IngestResult]:
        batches.append([item.message_id for item in items])
        return [IngestResult(n, False) for n in range(len(items))]

    batcher = IngestBatcher(run_batch, run_one, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(incoming(delivery(message_id=1))))
    await asyncio.sleep(0)
    later = []
    for n in range(2, 7):
        later.append(asyncio.create_task(batcher.submit(incoming(delivery(message_id=n)))))
        await asyncio.sleep(0)  # another loop iteration
    assert batches == [["1"]]

    gate.set()
    await asyncio.gather(first, *later)
    assert batches == [["1"], ["2", "3", "4", "5", "6"]]
