"""The receiver over real HTTP: accepted, duplicate, dispatched."""

from __future__ import annotations

from receiver import Context, Event

from ..conftest import Recorder, delivery, running, wait_for


def test_accepted_event_is_dispatched_once(settings, recorder: Recorder) -> None:
    """A signed delivery status is answered 200, stored, and its handler runs once."""

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", event)

    with running(settings, recorder.registry) as server:
        first = server.post(delivery())
        again = server.post(delivery())
        rows = wait_for(
            lambda: server.query("SELECT state, duplicates FROM events WHERE state != 'pending'")
        )
    assert (first.status_code, first.headers["x-receiver-outcome"]) == (200, "accepted")
    assert (again.status_code, again.headers["x-receiver-outcome"]) == (200, "duplicate")
    assert len(recorder.seen("status")) == 1
    assert rows == [("done", 1)]
