"""Deduplication over real HTTP: concurrent copies, status histories, replays."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from receiver import Context, Event

from ..conftest import Recorder, delivery, encode, running, signed_headers, wait_for


def test_thirty_concurrent_copies_dispatch_once(settings, recorder: Recorder) -> None:
    """30 concurrent copies of one event: all answered 200, one stored, one dispatch."""

    @recorder.registry.on("delivery-status.delivery-failed")
    async def failed(event: Event, ctx: Context) -> None:
        recorder.record("failed", event)

    body = encode(delivery(message_id=31, status=6))
    with running(settings, recorder.registry) as server:

        def send(_: int) -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                return client.post("/webhooks/mta", content=body, headers=signed_headers(body))

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(send, range(30)))
        wait_for(lambda: server.query("SELECT 1 FROM events WHERE state = 'done'"))
        stored = server.query("SELECT duplicates FROM events")
        metrics = server.client.get("/metrics").text
    assert [a.status_code for a in answers] == [200] * 30
    assert sorted(a.headers["x-receiver-outcome"] for a in answers).count("accepted") == 1
    assert stored == [(29,)]
    assert len(recorder.seen("failed")) == 1
    assert (
        'receiver_webhooks_duplicate_total{account="default",event="delivery-status"} 29.0'
        in metrics
    )


def test_status_history_each_status_once(settings, recorder: Recorder) -> None:
    """MTA's whole-history resends: each distinct (messageId, status) is handled once."""

    @recorder.registry.on("delivery-status")
    async def status(event: Event, ctx: Context) -> None:
        recorder.record("status", event.status)

    with running(settings, recorder.registry) as server:
        for history in ([1], [1, 3], [1, 3, 4], [1, 3, 4]):
            for code in history:
                assert server.post(delivery(message_id=40, status=code)).status_code == 200
        wait_for(lambda: len(server.query("SELECT 1 FROM events WHERE state = 'done'")) == 3)
    assert sorted(recorder.seen("status")) == [1, 3, 4]


def test_reply_dedup_by_reply_id_and_others_by_body(settings, recorder: Recorder) -> None:
    """Replies dedupe by replyId, message-sends by messageId; opt-ins (no id) by their
    exact body."""

    @recorder.registry.on_any
    async def anything(event: Event, ctx: Context) -> None:
        recorder.record(event.type, event)

    reply = {"fromNumber": "+15550001111", "replyId": 77, "message": "hi", "type": "message-reply"}
    opt_in = {"number": "+15550002222", "optInType": "keyword", "type": "number-opt-in"}
    send = {"messageId": 5150, "externalId": "order-1", "type": "message-send"}
    with running(settings, recorder.registry) as server:
        for payload in (reply, {**reply, "timestamp": "later"}, opt_in, opt_in):
            assert server.post(payload).status_code == 200
        server.post({**opt_in, "optInType": "web"})
        for payload in (send, {**send, "timestamp": "retry"}, {**send, "messageId": 5151}):
            assert server.post(payload).status_code == 200
        wait_for(lambda: len(server.query("SELECT 1 FROM events WHERE state = 'done'")) == 5)
    assert len(recorder.seen("message-reply")) == 1
    assert len(recorder.seen("number-opt-in")) == 2
    assert [e.message_id for e in recorder.seen("message-send")] == ["5150", "5151"]
