"""Handlers get a narrow, typed view of the store, never a statement executor."""

from __future__ import annotations

from typing import Any

from receiver import Context, Event, Settings
from receiver.dispatch.context import StoreView
from receiver.store.resends import STOP_REPLY
from receiver.store.sqlite import SqliteStore

from ..conftest import Recorder
from .test_worker import NOW, Clock, add, clock, make_worker, settings, store  # noqa: F401

EXECUTORS = ("execute", "fetch", "fetch_write", "executemany", "connection", "dialect")


async def test_a_handler_sees_typed_operations_and_no_way_to_run_sql(
    store: SqliteStore,  # noqa: F811
    settings: Settings,  # noqa: F811
    clock: Clock,  # noqa: F811
    recorder: Recorder,
) -> None:
    """``ctx.store`` in a real handler run answers message_state, opted_out and the
    fallback's repository, and has no ``execute``, ``fetch`` or ``connection``."""
    await store.resends.opt_out("+15551234567", STOP_REPLY, NOW)
    seen: dict[str, Any] = {}

    @recorder.registry.on("delivery-status")
    async def look(event: Event, ctx: Context) -> None:
        seen["view"] = ctx.store
        seen["state"] = await ctx.message_state(event.message_id)
        seen["opted_out"] = await ctx.store.opted_out("+15551234567")
        seen["resend"] = await ctx.store.resends.get(event.message_id or "")
        seen["present"] = [name for name in EXECUTORS if hasattr(ctx.store, name)]

    await add(store)
    assert await make_worker(store, recorder.registry, settings, clock).drain() == 1

    assert isinstance(seen["view"], StoreView)
    assert seen["present"] == []
    assert seen["state"] is not None
    assert seen["state"].message_id == "912345"
    assert seen["opted_out"] is True
    assert seen["resend"] is None


def test_the_view_refuses_new_attributes() -> None:
    """The view is slotted: a handler cannot hang the real store (or anything) on it."""
    view = StoreView(object())  # type: ignore[arg-type]
    try:
        view.execute = print  # type: ignore[attr-defined]
    except AttributeError:
        pass
    else:
        raise AssertionError("StoreView took a new attribute")
