"""The worker and dispatcher: per-handler retries, dead letters, order, leases, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from receiver import Context, Event, Registry, RetryLater, Settings
from receiver.dispatch.dispatcher import backoff
from receiver.dispatch.registry import handler_name
from receiver.dispatch.worker import Worker
from receiver.errors import StoreUnavailable
from receiver.metrics import Metrics
from receiver.mta.statuses import DELIVERED, QUEUED, SENT
from receiver.store import DEAD, DONE, FAILED, PENDING, Claimed
from receiver.store.sqlite import SqliteStore

from ..conftest import Recorder, delivery, make_settings, running, wait_for
from ..store.test_store import T0, eventually, incoming

NOW = 2_000.0  # the injected clock starts here; test events were received at T0


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    """A hand-driven clock."""
    return Clock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Whole-second backoff (1 s doubling, capped at 100 s), three attempts per handler."""
    return make_settings(tmp_path, retry_base_seconds=1.0, retry_max_seconds=100.0, max_attempts=3)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SqliteStore]:
    """The store of ``settings``, opened."""
    opened = SqliteStore(settings.database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def make_worker(
    store: Any,
    registry: Registry,
    settings: Settings,
    clock: Clock,
    owner: str = "w1",
    metrics: Metrics | None = None,
    **extra: Any,
) -> Worker:
    """A worker on the injected clock, without jitter (backoff waits its lower bound);
    ``extra`` goes to `Worker` as is (``busy``, ``pause``)."""
    return Worker(
        store,
        registry,
        settings,
        owner=owner,
        clock=clock,
        jitter=lambda: 0.0,
        metrics=metrics,
        **extra,
    )


async def add(store: SqliteStore, message_id: int = 912345, status: int = DELIVERED) -> int:
    """Ingest one delivery status (as the intake would) and return its event id."""
    result = await store.ingest(incoming(delivery(message_id=message_id, status=status)))
    return result.event_id


async def event_row(store: SqliteStore, event_id: int) -> tuple[Any, ...]:
    """(state, attempts, run_after, last_error, lease_owner) of one event."""
    [row] = await store.fetch(
        "SELECT state, attempts, run_after, last_error, lease_owner FROM events WHERE id = ?",
        (event_id,),
    )
    return row


async def runs(store: SqliteStore, event_id: int) -> dict[str, tuple[str, int]]:
    """{handler: (state, attempts)} recorded for one event."""
    rows = await store.fetch(
        "SELECT handler, state, attempts FROM handler_runs WHERE event_id = ?", (event_id,)
    )
    return {handler: (state, attempts) for handler, state, attempts in rows}


def three_handlers(recorder: Recorder, fail_times: int | None) -> tuple[Any, Any, Any]:
    """A `.delivered` handler, a `delivery-status` one and a catch-all that fails
    ``fail_times`` times (always when None), all recording their calls."""

    @recorder.registry.on("delivery-status.delivered")
    async def delivered(event: Event, ctx: Context) -> None:
        recorder.record("delivered", ctx.attempt)

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", ctx.attempt)

    @recorder.registry.on_any
    async def flaky(event: Event, ctx: Context) -> None:
        recorder.record("flaky", ctx.attempt)
        if fail_times is None or ctx.attempt <= fail_times:
            raise ValueError(f"boom on attempt {ctx.attempt}")

    return delivered, status, flaky


async def test_failing_handler_is_retried_and_the_others_run_once(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """A retry re-runs only the handler that failed; the event's other handlers ran once."""
    delivered, status, flaky = three_handlers(recorder, fail_times=1)
    worker = make_worker(store, recorder.registry, settings, clock)
    event_id = await add(store)

    assert await worker.drain() == 1
    assert await event_row(store, event_id) == (
        PENDING,
        1,
        NOW + 0.5,
        f"{handler_name(flaky)}: ValueError: boom on attempt 1",
        None,
    )
    assert await worker.drain() == 0, "not due before its backoff"

    clock.advance(0.5)
    assert await worker.drain() == 1

    assert recorder.seen("delivered") == [1]
    assert recorder.seen("status") == [1]
    assert recorder.seen("flaky") == [1, 2]
    assert (await event_row(store, event_id))[:2] == (DONE, 2)
    assert await runs(store, event_id) == {
        handler_name(delivered): (DONE, 1),
        handler_name(status): (DONE, 1),
        handler_name(flaky): (DONE, 2),
    }


async def test_hung_or_self_cancelling_handler_fails_its_attempt(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """A handler past `handler_timeout` is cancelled, and one raising CancelledError on its
    own fails: both attempts are recorded for retry (then the dead-letter), while the
    handler beside them completes once."""
    never = asyncio.Event()

    @recorder.registry.on("delivery-status.delivered")
    async def hung(event: Event, ctx: Context) -> None:
        recorder.record("hung", ctx.attempt)
        await never.wait()

    @recorder.registry.on("delivery-status")
    async def self_cancelling(event: Event, ctx: Context) -> None:
        recorder.record("self_cancelling", ctx.attempt)
        raise asyncio.CancelledError

    @recorder.registry.on_any
    async def fine(event: Event, ctx: Context) -> None:
        recorder.record("fine", ctx.attempt)

    quick = dataclasses.replace(settings, handler_timeout=0.05, max_attempts=2)
    worker = make_worker(store, recorder.registry, quick, clock)
    event_id = await add(store)

    assert await asyncio.wait_for(worker.drain(), 10) == 1, "the hung handler held the drain"
    state, attempts, _, last_error, _ = await event_row(store, event_id)
    assert (state, attempts) == (PENDING, 1)
    assert await runs(store, event_id) == {
        handler_name(hung): (FAILED, 1),
        handler_name(self_cancelling): (FAILED, 1),
        handler_name(fine): (DONE, 1),
    }
    [timeout_error] = await store.fetch(
        "SELECT last_error FROM handler_runs WHERE handler = ?", (handler_name(hung),)
    )
    assert timeout_error == (
        f"{handler_name(hung)}: HandlerTimeout: still running after 0.05 s, cancelled",
    )
    assert "HandlerCancelled" in last_error

    clock.advance(100)
    assert await asyncio.wait_for(worker.drain(), 10) == 1
    assert (await event_row(store, event_id))[0] == DEAD
    assert recorder.seen("hung") == [1, 2]
    assert recorder.seen("self_cancelling") == [1, 2]
    assert recorder.seen("fine") == [1]


async def test_handler_is_dead_lettered_after_max_attempts(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """After `max_attempts` failures the event is dead, keeps the error; good handlers ran once."""
    delivered, status, flaky = three_handlers(recorder, fail_times=None)
    metrics = Metrics()
    worker = make_worker(store, recorder.registry, settings, clock, metrics=metrics)
    event_id = await add(store)

    for _ in range(settings.max_attempts):
        assert await worker.drain() == 1
        clock.advance(1_000)
    assert await worker.drain() == 0, "a dead event is never claimed again"

    state, attempts, _, last_error, owner = await event_row(store, event_id)
    assert (state, attempts, owner) == (DEAD, 3, None)
    assert last_error == f"{handler_name(flaky)}: ValueError: boom on attempt 3"
    assert recorder.seen("flaky") == [1, 2, 3]
    assert recorder.seen("delivered") == [1]
    assert recorder.seen("status") == [1]
    assert await runs(store, event_id) == {
        handler_name(delivered): (DONE, 1),
        handler_name(status): (DONE, 1),
        handler_name(flaky): (DEAD, 3),
    }
    assert metrics.registry.get_sample_value("receiver_dead_letters_total") == 1


async def test_backoff_grows_between_attempts_up_to_the_cap(
    tmp_path: Path, clock: Clock, recorder: Recorder
) -> None:
    """Each failure pushes run_after further (1 s doubling, halved by zero jitter), capped."""
    settings = make_settings(
        tmp_path, retry_base_seconds=1.0, retry_max_seconds=4.0, max_attempts=6
    )
    store = SqliteStore(settings.database_url)
    await store.open()
    try:

        @recorder.registry.on("delivery-status")
        async def always(event: Event, ctx: Context) -> None:
            raise RuntimeError("down")

        worker = make_worker(store, recorder.registry, settings, clock)
        event_id = await add(store)
        waits = []
        for _ in range(5):
            assert await worker.drain() == 1
            run_after = (await event_row(store, event_id))[2]
            waits.append(run_after - clock.now)
            clock.now = run_after
        assert waits == [0.5, 1.0, 2.0, 2.0, 2.0]
        assert await worker.drain() == 1
        assert (await event_row(store, event_id))[0] == DEAD
    finally:
        await store.close()


def test_backoff_is_exponential_capped_and_jittered(tmp_path: Path) -> None:
    """`backoff` doubles from the base, stops at the cap, and jitter keeps it in [d/2, d]."""
    settings = make_settings(tmp_path, retry_base_seconds=2.0, retry_max_seconds=60.0)
    full = [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]

    assert [backoff(n, settings, lambda: 1.0) for n in range(1, 8)] == full
    assert [backoff(n, settings, lambda: 0.0) for n in range(1, 8)] == [d / 2 for d in full]
    assert backoff(3, settings, lambda: 0.5) == 6.0
    rng = random.Random(7)
    for attempt in range(1, 12):
        delay = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            assert delay / 2 <= backoff(attempt, settings, rng.random) <= delay


async def test_retry_later_schedules_its_own_delay(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """A handler raising `RetryLater(delay=30)` is due again exactly 30 s later."""

    @recorder.registry.on("delivery-status")
    async def later(event: Event, ctx: Context) -> None:
        recorder.record("later", ctx.attempt)
        if ctx.attempt == 1:
            raise RetryLater(delay=30, reason="MTA rate limit")

    worker = make_worker(store, recorder.registry, settings, clock)
    event_id = await add(store)

    assert await worker.drain() == 1
    state, _, run_after, last_error, _ = await event_row(store, event_id)
    assert (state, run_after) == (PENDING, NOW + 30)
    assert "RetryLater: MTA rate limit (in 30s)" in last_error

    clock.advance(29.9)
    assert await worker.drain() == 0
    clock.advance(0.1)
    assert await worker.drain() == 1
    assert recorder.seen("later") == [1, 2]
    assert (await event_row(store, event_id))[0] == DONE


async def test_on_error_handlers_see_the_failure_and_cannot_break_dispatch(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """Error handlers get (error, event, ctx); one that raises does not stop the rest."""
    boom = KeyError("missing")

    @recorder.registry.on("delivery-status.delivered")
    async def bad(event: Event, ctx: Context) -> None:
        raise boom

    @recorder.registry.on("delivery-status")
    async def after(event: Event, ctx: Context) -> None:
        recorder.record("after", event.id)

    @recorder.registry.on_error
    async def broken(error: BaseException, event: Event, ctx: Context) -> None:
        recorder.record("broken", error)
        raise RuntimeError("the error handler itself fails")

    @recorder.registry.on_error
    async def collect(error: BaseException, event: Event, ctx: Context) -> None:
        recorder.record("collect", (error, event, ctx))

    worker = make_worker(store, recorder.registry, settings, clock)
    event_id = await add(store)

    assert await worker.drain() == 1

    assert recorder.seen("broken") == [boom]
    [(error, event, ctx)] = recorder.seen("collect")
    assert error is boom
    assert (event.id, event.name, event.message_id) == (
        event_id,
        "delivery-status.delivered",
        "912345",
    )
    assert (ctx.handler, ctx.attempt) == (handler_name(bad), 1)
    assert recorder.seen("after") == [event_id]
    assert (await event_row(store, event_id))[0] == PENDING, "scheduled for a retry, not lost"


async def test_events_of_one_message_run_in_receipt_order(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """Events 2 and 3 of a message wait while event 1 is retried; then all run in order."""

    @recorder.registry.on("delivery-status")
    async def ordered(event: Event, ctx: Context) -> None:
        recorder.record("ordered", (event.status, ctx.attempt))
        if event.status == QUEUED and ctx.attempt == 1:
            raise ConnectionError("downstream hiccup")

    worker = make_worker(store, recorder.registry, settings, clock)
    ids = [await add(store, message_id=7, status=s) for s in (QUEUED, SENT, DELIVERED)]
    other = await add(store, message_id=8, status=SENT)

    assert await worker.drain() == 2
    assert recorder.seen("ordered") == [(QUEUED, 1), (SENT, 1)], "message 8 is not held up"
    assert [(await event_row(store, i))[0] for i in ids] == [PENDING] * 3

    clock.advance(1_000)
    assert await worker.drain() == 3
    assert recorder.seen("ordered")[2:] == [(QUEUED, 2), (SENT, 1), (DELIVERED, 1)]
    assert [(await event_row(store, i))[0] for i in [*ids, other]] == [DONE] * 4


async def test_event_of_a_crashed_worker_is_picked_up_after_its_lease(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """A lease taken by a worker that never completes expires; another worker then runs it."""

    @recorder.registry.on("delivery-status")
    async def handle(event: Event, ctx: Context) -> None:
        recorder.record("handle", event.id)

    event_id = await add(store)
    crashed: list[Claimed] = await store.claim("A", 10, settings.lease_seconds, now=clock())
    assert [c.id for c in crashed] == [event_id]

    survivor = make_worker(store, recorder.registry, settings, clock, owner="B")
    clock.advance(settings.lease_seconds - 1)
    assert await survivor.drain() == 0
    assert recorder.seen("handle") == []

    clock.advance(2)
    assert await survivor.drain() == 1
    assert recorder.seen("handle") == [event_id]
    assert (await event_row(store, event_id))[0::4] == (DONE, None)


async def test_lease_of_an_unrecorded_completion_is_not_renewed(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """When recording an event's completion fails, the heartbeat stops renewing its lease
    (while it renews the leases of work still running), so the lease expires and the
    event is claimed again instead of blocking its message for good."""
    lease = 0.3  # the heartbeat beats every 0.1 s of real time
    release = asyncio.Event()

    @recorder.registry.on("delivery-status.delivered")
    async def quick(event: Event, ctx: Context) -> None:
        recorder.record("quick", event.id)

    @recorder.registry.on("delivery-status.sent")
    async def slow(event: Event, ctx: Context) -> None:
        recorder.record("slow", event.id)
        await release.wait()

    class FailingComplete:
        """The store, whose first `complete` fails."""

        failed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def complete(self, *args: Any, **kwargs: Any) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("disk gone")
            await store.complete(*args, **kwargs)

    orphan = await add(store, message_id=1, status=DELIVERED)
    busy = await add(store, message_id=2, status=SENT)
    worker = make_worker(
        FailingComplete(),
        recorder.registry,
        dataclasses.replace(settings, lease_seconds=lease),
        clock,
    )
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.processed == 1 and recorder.seen("slow"))
        clock.advance(lease / 3)  # no lease has expired yet

        async def renewed() -> bool:
            rows = await store.fetch("SELECT id, lease_until FROM events ORDER BY id")
            return bool(rows[1][1] > NOW + lease + 0.05)

        await eventually(renewed)
        assert await event_row(store, orphan) == (PENDING, 0, T0, None, "w1")
        assert await store.fetch("SELECT lease_until FROM events WHERE id = ?", (orphan,)) == [
            (NOW + lease,)
        ], "the heartbeat renewed the lease of an event no handler runs"

        release.set()
        await eventually(lambda: worker.processed == 2)
        clock.advance(lease)  # the orphan's lease expires: the worker claims it again
        await eventually(lambda: len(recorder.seen("quick")) == 2)
        await eventually(lambda: _state_is(store, orphan, DONE))
        assert recorder.seen("slow") == [busy]
    finally:
        release.set()
        await worker.stop(grace=1.0)
        await task


async def _state_is(store: SqliteStore, event_id: int, state: str) -> bool:
    return bool((await event_row(store, event_id))[0] == state)


async def test_stop_lets_quick_work_finish_and_releases_blocked_work(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """On stop, quick work finishes within the grace; blocked work is cancelled and released."""
    go, never = asyncio.Event(), asyncio.Event()

    @recorder.registry.on("delivery-status.queued")
    async def quick(event: Event, ctx: Context) -> None:
        recorder.record("quick", "started")
        await go.wait()
        recorder.record("quick", "finished")

    @recorder.registry.on("delivery-status.sent")
    async def blocked(event: Event, ctx: Context) -> None:
        recorder.record("blocked", "started")
        try:
            await never.wait()
        except asyncio.CancelledError:
            recorder.record("blocked", "cancelled")
            raise

    quick_id = await add(store, message_id=1, status=QUEUED)
    blocked_id = await add(store, message_id=2, status=SENT)
    worker = make_worker(store, recorder.registry, settings, clock)
    running_worker = asyncio.create_task(worker.run())
    await eventually(lambda: recorder.seen("quick") and recorder.seen("blocked"))

    stopping = asyncio.create_task(worker.stop(grace=1.0))
    await asyncio.sleep(0)  # stop() has begun waiting on the work in flight
    go.set()
    await stopping
    await running_worker

    assert recorder.seen("quick") == ["started", "finished"]
    assert recorder.seen("blocked") == ["started", "cancelled"]
    assert (await event_row(store, quick_id))[0] == DONE
    assert await event_row(store, blocked_id) == (PENDING, 0, T0, None, None)
    [reclaimed] = await store.claim("other", 10, settings.lease_seconds, now=clock())
    assert reclaimed.id == blocked_id


async def test_worker_gives_way_while_webhooks_wait(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """While webhooks wait for their 200 the worker claims one batch per pause; once they
    are answered it runs at full speed again, and every event is processed."""

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", event.message_id)

    for n in range(1, 41):
        await add(store, message_id=n)
    busy = True
    pauses: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def pause(seconds: float) -> None:
        gate = asyncio.Event()
        pauses.put_nowait(gate)
        await gate.wait()

    metrics = Metrics()
    worker = make_worker(
        store,
        recorder.registry,
        dataclasses.replace(settings, worker_concurrency=4),
        clock,
        metrics=metrics,
        busy=lambda: busy,
        pause=pause,
    )
    running_worker = asyncio.create_task(worker.run())

    first = await asyncio.wait_for(pauses.get(), 5)
    assert recorder.seen("status") == [], "nothing is claimed before the first pause"
    first.set()
    second = await asyncio.wait_for(pauses.get(), 5)
    await eventually(lambda: len(recorder.seen("status")) == 2)
    assert len(recorder.seen("status")) == 2, "one batch (half the concurrency) per pause"

    busy = False
    second.set()
    await eventually(lambda: len(recorder.seen("status")) == 40)
    await worker.stop()
    await running_worker

    assert sorted(recorder.seen("status")) == sorted(str(n) for n in range(1, 41))
    assert pauses.empty(), "no pause once no webhook waits"
    assert metrics.registry.get_sample_value("receiver_worker_yields_total") == 2


class GatedStore:
    """A store whose ``gated``-th `claim` (the first by default) waits for the test to
    open the gate."""

    def __init__(self, inner: SqliteStore, gated: int = 1) -> None:
        self.inner = inner
        self.gated = gated
        self.claims = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def claim(self, *args: Any, **kwargs: Any) -> list[Claimed]:
        self.claims += 1
        if self.claims == self.gated:
            self.entered.set()
            await self.gate.wait()
        return await self.inner.claim(*args, **kwargs)


async def open_all(gated: GatedStore, unblock: asyncio.Event) -> None:
    """Open every gate and let what the test started run out (bounded)."""
    gated.gate.set()
    unblock.set()
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    if leftovers:
        await asyncio.wait(leftovers, timeout=2)


async def test_stop_during_a_claim_leaves_no_event_leased(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """Events claimed while `stop()` runs are released (or finished), never left leased."""

    unblock = asyncio.Event()

    @recorder.registry.on("delivery-status")
    async def slow(event: Event, ctx: Context) -> None:
        recorder.record("slow", event.id)
        await unblock.wait()

    event_id = await add(store)
    gated = GatedStore(store)
    worker = make_worker(gated, recorder.registry, settings, clock)
    running_worker = asyncio.create_task(worker.run())
    try:
        await gated.entered.wait()
        stopping = asyncio.create_task(worker.stop(grace=5))
        gated.gate.set()  # the claim returns while stop() is under way
        await stopping
        await running_worker

        assert (await event_row(store, event_id))[4] is None, "still leased to a stopped worker"
        assert len(await store.claim("other", 10, settings.lease_seconds, now=clock())) == 1
    finally:
        await open_all(gated, unblock)


async def test_stop_during_a_claim_keeps_the_leases_of_work_in_flight(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """Handing back what a claim returned after `stop()` leaves the leases of handlers
    still running alone: no other worker can take their events meanwhile."""
    unblock = asyncio.Event()

    @recorder.registry.on("delivery-status")
    async def slow(event: Event, ctx: Context) -> None:
        recorder.record("slow", event.id)
        await unblock.wait()

    running_id = await add(store, message_id=1)
    gated = GatedStore(store, gated=2)
    worker = make_worker(gated, recorder.registry, settings, clock)
    running_worker = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: recorder.seen("slow") == [running_id])
        claimed_id = await add(store, message_id=2)
        worker.notify()
        await gated.entered.wait()
        stopping = asyncio.create_task(worker.stop(grace=5))
        gated.gate.set()  # the second claim returns while stop() is under way
        await running_worker  # its loop handed the claim back and ended

        assert (await event_row(store, running_id))[4] == "w1", "in-flight lease released"
        assert (await event_row(store, claimed_id))[4] is None
        unblock.set()
        await stopping
        assert (await event_row(store, running_id))[0] == DONE
    finally:
        await open_all(gated, unblock)


async def test_dead_event_keeps_its_error_when_the_last_run_succeeds(
    store: SqliteStore, settings: Settings, clock: Clock
) -> None:
    """A dead-lettered event keeps a last_error even if its final run had no failure."""
    before = Registry()
    after = Registry()

    @before.on("delivery-status")
    @after.on("delivery-status")
    async def broken(event: Event, ctx: Context) -> None:
        raise ValueError("always")

    @after.on("delivery-status")
    async def added_in_a_redeploy(event: Event, ctx: Context) -> None:
        if ctx.attempt == 1:
            raise TimeoutError("first try")

    event_id = await add(store)
    old = make_worker(store, before, settings, clock)
    for _ in range(settings.max_attempts - 1):
        assert await old.drain() == 1
        clock.advance(1_000)
    new = make_worker(store, after, settings, clock)
    assert await new.drain() == 1  # broken dies (attempt 3), the new handler fails once
    clock.advance(1_000)
    assert await new.drain() == 1  # the new handler succeeds: the event is dead

    state, _, _, last_error, _ = await event_row(store, event_id)
    assert state == DEAD
    assert last_error is not None
    assert "ValueError: always" in last_error


async def test_handler_runs_are_counted_in_metrics(
    store: SqliteStore, settings: Settings, clock: Clock, recorder: Recorder
) -> None:
    """`receiver_handler_runs_total` counts runs by handler and outcome."""
    delivered, status, flaky = three_handlers(recorder, fail_times=None)
    metrics = Metrics()
    worker = make_worker(store, recorder.registry, settings, clock, metrics=metrics)
    await add(store, message_id=1)
    await add(store, message_id=2)

    for _ in range(settings.max_attempts):
        assert await worker.drain() == 2
        clock.advance(1_000)

    def count(handler: Any, outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "receiver_handler_runs_total",
            {"handler": handler_name(handler), "outcome": outcome, "account": "default"},
        )

    assert count(delivered, "done") == 2
    assert count(status, "done") == 2
    assert count(flaky, "failed") == 4
    assert count(flaky, "dead") == 2
    assert count(flaky, "done") is None
    assert metrics.registry.get_sample_value("receiver_dead_letters_total") == 2


def test_dead_letter_over_http_while_the_other_handlers_run_once(
    tmp_path: Path, recorder: Recorder
) -> None:
    """End to end: a failing handler is retried then dead-lettered; two others complete once."""
    settings = make_settings(tmp_path, max_attempts=3)
    delivered, status, flaky = three_handlers(recorder, fail_times=None)

    with running(settings, recorder.registry) as server:
        answer = server.post(delivery(status=DELIVERED))
        event_id = int(answer.headers["x-receiver-event-id"])
        [(last_error, attempts)] = wait_for(
            lambda: server.query(
                "SELECT last_error, attempts FROM events WHERE id = ? AND state = 'dead'",
                (event_id,),
            )
        )
        handler_rows = server.query(
            "SELECT handler, state, attempts FROM handler_runs WHERE event_id = ? ORDER BY 1",
            (event_id,),
        )

    assert answer.status_code == 200
    assert (attempts, last_error) == (3, f"{handler_name(flaky)}: ValueError: boom on attempt 3")
    assert recorder.seen("flaky") == [1, 2, 3]
    assert recorder.seen("delivered") == [1]
    assert recorder.seen("status") == [1]
    assert sorted(handler_rows) == sorted(
        [
            (handler_name(delivered), DONE, 1),
            (handler_name(status), DONE, 1),
            (handler_name(flaky), DEAD, 3),
        ]
    )


async def test_claims_failing_through_an_outage_are_logged_once_then_on_recovery(
    store: SqliteStore,
    settings: Settings,
    clock: Clock,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Five failed claims in a row (a store outage) log one traceback, not five, then one
    line when claiming works again."""

    class Outage:
        failures = 5

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def claim(self, *args: Any, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("PostgreSQL: ConnectionRefusedError")
            return await store.claim(*args, **kwargs)

    worker = make_worker(Outage(), recorder.registry, settings, clock)
    for _ in range(6):
        await worker.run_once()
    lines = [r for r in caplog.records if r.name == "receiver.worker"]
    assert [(r.levelname, r.exc_info is not None) for r in lines] == [
        ("ERROR", True),
        ("WARNING", False),
    ]
    assert "works again after 5 failed attempts" in lines[1].getMessage()


class CountingStore:
    """A store that notes how many events each claim returned."""

    def __init__(self, inner: SqliteStore, claimed: list[int]) -> None:
        self.inner, self.claimed = inner, claimed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def claim(self, *args: Any, **kwargs: Any) -> list[Claimed]:
        events = await self.inner.claim(*args, **kwargs)
        self.claimed.append(len(events))
        return events


async def test_a_caught_up_worker_claims_the_events_of_several_commits_together(
    store: SqliteStore, recorder: Recorder, settings: Settings, clock: Clock
) -> None:
    """Once caught up, new events gather before the next claim: five webhooks committed
    one after another, each waking the worker, are one claim, not five."""

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", event.message_id)

    claimed: list[int] = []

    quiet = dataclasses.replace(settings, worker_poll_seconds=30.0)  # only wake-ups
    worker = make_worker(CountingStore(store, claimed), recorder.registry, quiet, clock, gather=0.2)
    running_worker = asyncio.create_task(worker.run())
    await eventually(lambda: claimed == [0])  # caught up: waiting for a wake-up
    for n in range(1, 6):
        await add(store, message_id=n)
        worker.notify()
    await eventually(lambda: len(recorder.seen("status")) == 5)
    await worker.stop()
    await running_worker

    assert [count for count in claimed if count] == [5]


async def test_a_worker_cancelled_as_it_is_woken_stops(
    store: SqliteStore, recorder: Recorder, settings: Settings, clock: Clock
) -> None:
    """A wake-up and a cancellation in the same instant: the cancellation wins and
    `run` ends (Python 3.11's `asyncio.wait_for` returned the wake-up instead, and the
    worker went on claiming for ever)."""
    claimed: list[int] = []
    quiet = dataclasses.replace(settings, worker_poll_seconds=30.0)
    worker = make_worker(CountingStore(store, claimed), recorder.registry, quiet, clock)
    running_worker = asyncio.create_task(worker.run())
    await eventually(lambda: claimed == [0])  # caught up: waiting for a wake-up

    worker.notify()
    running_worker.cancel()
    await asyncio.wait({running_worker}, timeout=5)
    if not running_worker.done():  # the bug: stop it the polite way, then fail
        await worker.stop()
        await running_worker
    assert running_worker.cancelled(), "the worker went on after its cancellation"


async def test_the_next_batch_is_claimed_while_the_last_one_runs(
    store: SqliteStore, recorder: Recorder, settings: Settings, clock: Clock
) -> None:
    """The worker claims half its slots at a time and claims again while that half runs:
    with a backlog its round trip to the store overlaps with its handlers instead of
    waiting for them, and it never holds more events than its concurrency."""
    unblock = asyncio.Event()
    running: list[int] = []
    most = 0

    @recorder.registry.on("delivery-status")
    async def held(event: Event, ctx: Context) -> None:
        nonlocal most
        recorder.record("held", event.message_id)
        running.append(event.id)
        most = max(most, len(running))
        await unblock.wait()
        running.remove(event.id)

    claimed: list[int] = []

    for n in range(1, 11):
        await add(store, message_id=n)
    four = dataclasses.replace(settings, worker_concurrency=4, worker_poll_seconds=30.0)
    worker = make_worker(CountingStore(store, claimed), recorder.registry, four, clock)
    running_worker = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: len(recorder.seen("held")) == 4)
        assert claimed == [2, 2], "two half batches, the second while the first is held"
        unblock.set()
        await eventually(lambda: len(recorder.seen("held")) == 10)
        assert max(claimed) == 2
        assert most == 4, "never more handlers at once than the concurrency"
    finally:
        unblock.set()
        await worker.stop()
        await running_worker
