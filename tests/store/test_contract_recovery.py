"""Lease recovery on both backends: a dead owner's leases are taken over within a few
heartbeat intervals; a live owner keeps its leases however slow its handlers are."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from receiver import Context, Event, Registry
from receiver.dispatch.worker import Worker, stale_after
from receiver.store import DONE, FAILED, PENDING, Completion, HandlerRun, Store

from ..conftest import delivery, make_settings
from .test_store import LEASE, NOW, eventually, incoming


async def test_recover_releases_only_the_leases_of_owners_with_a_stale_heartbeat(
    store: Store,
) -> None:
    """Owners beating before the bound lose their leases; a fresh beat, no beat at all
    (a CLI replay) or the asking owner itself keep theirs."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in (1, 2, 3, 4)]
    for owner, beat in (("dead", NOW - 60), ("alive", NOW - 1), ("me", NOW - 60)):
        await store.heartbeat(owner, beat)
    for owner in ("dead", "alive", "no-beat", "me"):
        await store.claim(owner, 1, LEASE, now=NOW)

    assert await store.recover("me", stale_before=NOW - 10) == 1
    assert await store.recover("me", stale_before=NOW - 10) == 0

    rows = await store.fetch("SELECT id, lease_owner, lease_until FROM events ORDER BY id")
    assert rows == [
        (ids[0], None, None),
        (ids[1], "alive", NOW + LEASE),
        (ids[2], "no-beat", NOW + LEASE),
        (ids[3], "me", NOW + LEASE),
    ]
    [taken] = await store.claim("other", 10, LEASE, now=NOW)
    assert taken.id == ids[0]


async def test_recover_leaves_finished_events_alone(store: Store) -> None:
    """Only pending events are released: a done event keeps its (cleared) lease fields."""
    await store.ingest(incoming())
    await store.heartbeat("dead", NOW - 60)
    await store.claim("dead", 1, LEASE, now=NOW)
    await store.execute("UPDATE events SET state = 'done'")

    assert await store.recover("me", stale_before=NOW - 10) == 0
    assert await store.fetch("SELECT lease_owner FROM events") == [("dead",)]


@contextlib.asynccontextmanager
async def running_worker(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """``worker.run()`` as a task; stopped (or found already cancelled) on exit."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        if not task.done():
            await worker.stop(grace=0)
            await task


async def test_a_dead_workers_leases_are_taken_over_within_a_few_heartbeats(
    store: Store, tmp_path: Path
) -> None:
    """A worker that dies holding a lease (60 s long) loses it to a new worker once its
    heartbeat is `stale_after` old, not after the lease: the event runs to the end."""
    settings = make_settings(tmp_path, lease_seconds=60.0, heartbeat_seconds=0.1)
    stuck, calls = asyncio.Event(), []
    first, second = Registry(), Registry()

    @first.on("delivery-status")
    async def hang(event: Event, ctx: Context) -> None:
        await stuck.wait()

    @second.on("delivery-status")
    async def finish(event: Event, ctx: Context) -> None:
        calls.append(event.id)

    event = await store.ingest(incoming())
    dead = Worker(store, first, settings, owner="dead")
    dying = asyncio.create_task(dead.run())
    await eventually(lambda: store.fetch("SELECT 1 FROM events WHERE lease_owner = 'dead'"))
    dying.cancel()  # no stop(): the leases stay, as after SIGKILL
    with contextlib.suppress(asyncio.CancelledError):
        await dying
    died = time.monotonic()

    async with running_worker(Worker(store, second, settings, owner="heir")):
        await eventually(
            lambda: store.fetch("SELECT 1 FROM events WHERE state = 'done'"), within=10
        )
    took = time.monotonic() - died
    assert calls == [event.event_id]
    assert stale_after(settings) <= took < stale_after(settings) + 3


async def test_a_live_but_slow_worker_keeps_its_leases(store: Store, tmp_path: Path) -> None:
    """A handler running many heartbeat intervals: the owner keeps beating, so recovery by
    another owner releases nothing, and the event finishes under its first owner."""
    settings = make_settings(tmp_path, lease_seconds=60.0, heartbeat_seconds=0.05)
    release, registry = asyncio.Event(), Registry()

    @registry.on("delivery-status")
    async def slow(event: Event, ctx: Context) -> None:
        await release.wait()

    await store.ingest(incoming())
    async with running_worker(Worker(store, registry, settings, owner="slow")):
        await eventually(lambda: store.fetch("SELECT 1 FROM events WHERE lease_owner = 'slow'"))
        end = time.monotonic() + 4 * stale_after(settings)
        while time.monotonic() < end:
            assert await store.recover("other", time.time() - stale_after(settings)) == 0
            await asyncio.sleep(settings.heartbeat_seconds)
        assert await store.fetch("SELECT lease_owner FROM events") == [("slow",)]
        release.set()
        await eventually(lambda: store.fetch("SELECT 1 FROM events WHERE state = 'done'"))
    assert await store.fetch("SELECT state, attempts FROM events") == [(DONE, 1)]


async def test_one_complete_call_records_a_batch_and_drops_only_lost_leases(
    store: Store,
) -> None:
    """A batch of completions in one call: A's events take their states and runs; the
    event B took over keeps B's lease and gets none of A's runs."""
    ids = [(await store.ingest(incoming(delivery(message_id=n)))).event_id for n in (1, 2, 3)]
    await store.claim("A", 3, LEASE, now=NOW)
    await store.execute("UPDATE events SET lease_owner = 'B' WHERE id = ?", (ids[1],))
    ok, failed = HandlerRun("h", DONE, 1), HandlerRun("h", FAILED, 1, "h: boom")
    await store.complete(
        "A",
        [
            Completion(ids[2], PENDING, NOW + 9, (failed,), failed.last_error),
            Completion(ids[0], DONE, NOW, (ok, HandlerRun("g", DONE, 1))),
            Completion(ids[1], DONE, NOW, (ok,)),
        ],
        now=NOW + 1,
    )

    events = await store.fetch("SELECT state, attempts, lease_owner FROM events ORDER BY id")
    assert events == [(DONE, 1, None), (PENDING, 0, "B"), (PENDING, 1, None)]
    runs = await store.fetch("SELECT event_id, handler, state FROM handler_runs ORDER BY 1, 2")
    assert runs == [(ids[0], "g", DONE), (ids[0], "h", DONE), (ids[2], "h", FAILED)]
