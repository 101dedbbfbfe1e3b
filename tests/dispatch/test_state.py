"""Per-message state moves forward only: through the store and over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver import Context, Event, MessageState, Settings
from receiver.mta.statuses import (
    DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_UNCONFIRMED,
    QUEUED,
    SEND_REJECTED,
    SENDING,
    SENT,
    UNDELIVERED,
)
from receiver.store.sqlite import SqliteStore

from ..conftest import Recorder, Server, delivery, running, wait_for
from ..store.test_store import T0, incoming, reply

UNKNOWN_CODE = 42  # MTA may add codes past 13 (docs/mta.md): recorded, never a crash


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store on a fresh file."""
    opened = SqliteStore(f"sqlite:///{tmp_path / 'state.db'}")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def ingest_statuses(store: SqliteStore, *statuses: int, message_id: int = 77) -> None:
    """Ingest one delivery status per code, a second apart, in the given order."""
    for offset, status in enumerate(statuses):
        await store.ingest(
            incoming(delivery(message_id=message_id, status=status), received_at=T0 + offset)
        )


async def state_of(store: SqliteStore, message_id: int = 77) -> MessageState:
    """The message's state; fails the test when the store never saw the message."""
    state = await store.message_state(str(message_id))
    assert state is not None
    return state


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param((QUEUED, SENDING, SENT, DELIVERED), DELIVERED, id="progress"),
        pytest.param((QUEUED, DELIVERED, SENT), DELIVERED, id="late-sent-after-delivered"),
        pytest.param((DELIVERED, QUEUED), DELIVERED, id="queued-after-delivered"),
        pytest.param((DELIVERED, UNDELIVERED), DELIVERED, id="failure-after-delivered"),
        pytest.param((DELIVERY_FAILED, UNDELIVERED, SENT), DELIVERY_FAILED, id="failure-sticks"),
        pytest.param((SEND_REJECTED, DELIVERED), DELIVERED, id="sms-fallback-delivered"),
        pytest.param(
            (SENT, DELIVERY_UNCONFIRMED), DELIVERY_UNCONFIRMED, id="unconfirmed-over-sent"
        ),
        pytest.param(
            (DELIVERY_UNCONFIRMED, SENT), DELIVERY_UNCONFIRMED, id="sent-after-unconfirmed"
        ),
        pytest.param(
            (DELIVERY_UNCONFIRMED, UNDELIVERED), UNDELIVERED, id="failure-over-unconfirmed"
        ),
        pytest.param((SENT, UNKNOWN_CODE), SENT, id="unknown-code-keeps-known-state"),
        pytest.param((UNKNOWN_CODE, QUEUED), QUEUED, id="known-code-over-unknown"),
    ],
)
async def test_state_only_moves_forward(
    store: SqliteStore, statuses: tuple[int, ...], expected: int
) -> None:
    """Whatever order statuses arrive in, the message keeps the highest-ranking one."""
    await ingest_statuses(store, *statuses)

    state = await state_of(store)
    assert state.status == expected
    assert state.status_at == T0 + statuses.index(expected)
    assert state.first_seen == T0


async def test_late_status_is_recorded_as_an_event_without_moving_the_state(
    store: SqliteStore,
) -> None:
    """A SENT after DELIVERED gets its own event row; the message stays DELIVERED."""
    await ingest_statuses(store, QUEUED, DELIVERED, SENT)

    rows = await store.fetch("SELECT status, name, state FROM events ORDER BY id")
    assert rows == [
        (QUEUED, "delivery-status.queued", "pending"),
        (DELIVERED, "delivery-status.delivered", "pending"),
        (SENT, "delivery-status.sent", "pending"),
    ]
    state = await state_of(store)
    assert (state.status, state.status_name, state.status_at) == (DELIVERED, "delivered", T0 + 1)


async def test_first_failure_is_sticky(store: SqliteStore) -> None:
    """DELIVERY_FAILED (6) is kept against a later UNDELIVERED (9) and a later SENT."""
    await ingest_statuses(store, SENT, DELIVERY_FAILED, UNDELIVERED, SENT)

    state = await state_of(store)
    assert (state.status, state.status_name, state.status_at) == (
        DELIVERY_FAILED,
        "delivery-failed",
        T0 + 1,
    )
    rows = await store.fetch("SELECT status FROM events ORDER BY id")
    assert rows == [(SENT,), (DELIVERY_FAILED,), (UNDELIVERED,)], "the repeated SENT is a duplicate"


async def test_delivered_after_a_failure_upgrades_the_state(store: SqliteStore) -> None:
    """MTA's own SMS fallback can deliver after the iMessage failed: DELIVERED wins."""
    await ingest_statuses(store, DELIVERY_FAILED, DELIVERED, UNDELIVERED)

    state = await state_of(store)
    assert (state.status, state.status_at) == (DELIVERED, T0 + 1)


async def test_unknown_code_is_recorded_and_named_unknown(store: SqliteStore) -> None:
    """Code 42 is stored on its event; it names a new message's state, never moves a known one."""
    await ingest_statuses(store, UNKNOWN_CODE, message_id=1)
    await ingest_statuses(store, SENT, UNKNOWN_CODE, message_id=2)

    rows = await store.fetch("SELECT message_id, status, name FROM events ORDER BY id")
    assert rows == [
        ("1", UNKNOWN_CODE, "delivery-status.unknown"),
        ("2", SENT, "delivery-status.sent"),
        ("2", UNKNOWN_CODE, "delivery-status.unknown"),
    ]
    fresh = await state_of(store, 1)
    assert (fresh.status, fresh.status_name) == (UNKNOWN_CODE, "unknown")
    known = await state_of(store, 2)
    assert (known.status, known.status_name) == (SENT, "sent")


async def test_identity_fields_fill_in_and_are_not_overwritten(store: SqliteStore) -> None:
    """Phone, externalId and senderName fill in from later events; the first value seen stays."""
    bare = delivery(message_id=9, status=QUEUED, externalId=None)
    del bare["senderName"]
    await store.ingest(incoming(bare, received_at=T0))
    first = await state_of(store, 9)
    assert (first.phone, first.external_id, first.sender_name) == ("+15551234567", None, None)

    await store.ingest(incoming(delivery(message_id=9, status=SENT), received_at=T0 + 1))
    later = delivery(
        message_id=9,
        status=DELIVERED,
        destinationNumber="+15550000000",
        externalId="other",
        senderName="Other",
    )
    await store.ingest(incoming(later, received_at=T0 + 2))

    state = await state_of(store, 9)
    assert (state.phone, state.external_id, state.sender_name) == (
        "+15551234567",
        "order-9",
        "Acme",
    )
    assert state.status == DELIVERED


# --- over HTTP ----------------------------------------------------------------------------


def message_row(server: Server, message_id: int) -> tuple[object, ...] | None:
    """The messages row of one message, read over a separate connection."""
    rows = server.query(
        "SELECT status, phone, external_id, sender_name FROM messages WHERE message_id = ?",
        (str(message_id),),
    )
    return rows[0] if rows else None


def test_state_progresses_and_late_sent_is_kept_over_http(settings: Settings) -> None:
    """Posted QUEUED, DELIVERED, then a late SENT: three events, the message stays DELIVERED."""
    with running(settings) as server:
        answers = [server.post(delivery(message_id=5, status=s)) for s in (QUEUED, SENT)]
        assert message_row(server, 5) == (SENT, "+15551234567", "order-5", "Acme")
        answers.append(server.post(delivery(message_id=5, status=DELIVERED)))
        answers.append(server.post(delivery(message_id=6, status=QUEUED)))
        answers.append(server.post(delivery(message_id=6, status=DELIVERED)))
        answers.append(server.post(delivery(message_id=6, status=SENT)))
        events = server.query("SELECT message_id, status FROM events ORDER BY id")

        assert [a.headers["x-receiver-outcome"] for a in answers] == ["accepted"] * 6
        assert events == [("5", 1), ("5", 3), ("5", 4), ("6", 1), ("6", 4), ("6", 3)]
        assert message_row(server, 5) == (DELIVERED, "+15551234567", "order-5", "Acme")
        assert message_row(server, 6) == (DELIVERED, "+15551234567", "order-6", "Acme")


def test_failure_is_sticky_and_delivered_upgrades_over_http(settings: Settings) -> None:
    """Over HTTP: 6 then 9 and SENT keep 6; a DELIVERED afterwards upgrades; 42 changes nothing."""
    with running(settings) as server:
        for status in (DELIVERY_FAILED, UNDELIVERED, SENT):
            assert server.post(delivery(message_id=8, status=status)).status_code == 200
        assert message_row(server, 8) == (DELIVERY_FAILED, "+15551234567", "order-8", "Acme")

        assert server.post(delivery(message_id=8, status=DELIVERED)).status_code == 200
        assert server.post(delivery(message_id=8, status=UNKNOWN_CODE)).status_code == 200

        assert message_row(server, 8) == (DELIVERED, "+15551234567", "order-8", "Acme")
        assert server.query("SELECT count(*) FROM events WHERE message_id = '8'") == [(5,)]


def test_only_delivery_status_moves_the_state_over_http(settings: Settings) -> None:
    """A reply or message-send that carries a `status` field (their fields are not MTA's
    status codes, docs/mta.md) records its event but leaves the message's state alone."""
    with running(settings) as server:
        assert server.post(delivery(message_id=70, status=SENT)).status_code == 200
        assert server.post({"messageId": 70, "status": DELIVERED, "replyId": 1}).status_code == 200
        answer = server.post({"messageId": 70, "status": DELIVERED}, event="message-reply")
        assert answer.status_code == 200
        send = {"messageId": 71, "status": DELIVERY_FAILED}
        assert server.post(send, event="message-send").status_code == 200

        assert message_row(server, 70) == (SENT, "+15551234567", "order-70", "Acme")
        assert server.query("SELECT status FROM messages WHERE message_id = '71'") == [(None,)]
        assert server.query("SELECT type, status FROM events ORDER BY id") == [
            ("delivery-status", SENT),
            ("message-reply", None),
            ("message-reply", None),
            ("message-send", None),
        ]


def test_handler_reads_the_message_state_through_its_context(
    settings: Settings, recorder: Recorder
) -> None:
    """`ctx.message_state` gives a handler the forward-only state; None without a message id."""

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", (event.status, await ctx.message_state(event.message_id)))

    @recorder.registry.on("message-reply")
    async def replied(event: Event, ctx: Context) -> None:
        recorder.record("reply", await ctx.message_state(event.message_id))

    with running(settings, recorder.registry) as server:
        for count, status in enumerate((QUEUED, DELIVERED, SENT), start=1):
            assert server.post(delivery(message_id=31, status=status)).status_code == 200
            wait_for(lambda count=count: len(recorder.seen("status")) == count)
        assert server.post(reply(501)).status_code == 200
        wait_for(lambda: recorder.seen("reply"))

    seen = recorder.seen("status")
    assert [(status, state.status) for status, state in seen] == [
        (QUEUED, QUEUED),
        (DELIVERED, DELIVERED),
        (SENT, DELIVERED),
    ]
    last = seen[-1][1]
    assert isinstance(last, MessageState)
    assert (last.message_id, last.phone, last.external_id, last.sender_name) == (
        "31",
        "+15551234567",
        "order-31",
        "Acme",
    )
    assert recorder.seen("reply") == [None]
