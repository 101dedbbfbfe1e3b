"""Reading a sent message back from MTA (GET /sent-messages/{id}, /delivery-report)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from receiver.mta.errors import MTARejected, MTAUnavailable
from receiver.mta.readback import ReadBack

from ..fallback.test_fallback import PHONE, fallback


def test_text_no_webhook_carried_comes_from_sent_messages(tmp_path: Path, caplog) -> None:
    """No message-send webhook: the resend's text is read from MTA's /sent-messages/{id}."""
    caplog.set_level(logging.INFO, "receiver.mta")
    with fallback(tmp_path) as s:
        mid = 4242
        s.fake.sent.add(mid, [PHONE], "Your table is ready")
        s.play([3, 6], message_id=mid, include_send=False)
        s.wait_state(mid, "sent")
    assert s.fake.sends[0].body["message"] == "Your table is ready"
    reads = [r for r in s.fake.requests if r.path == f"/v3/sent-messages/{mid}"]
    assert len(reads) == 1
    assert f"text of {mid} found" in caplog.text


def test_unknown_original_at_mta_stays_content_unknown(tmp_path: Path) -> None:
    """MTA answers 404 for the original: skipped as content_unknown, as before."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6], include_send=False)
        row = s.wait_state(mid, "skipped")
    assert row["reason"] == "content_unknown"
    assert any(r.path == f"/v3/sent-messages/{mid}" for r in s.fake.requests)
    assert s.fake.sends == []


@pytest.mark.parametrize("spelling", [PHONE, PHONE[2:]], ids=["e164", "national"])
def test_delivery_report_calls_the_resend_off(tmp_path: Path, spelling: str) -> None:
    """The original's delivery report says it reached the recipient (MTA's own fallback,
    no webhook): the resend is cancelled just before it would go out."""
    with fallback(tmp_path) as s:
        mid = 4343
        s.fake.sent.add(mid, [PHONE], "Your code: 42")
        s.fake.sent.status(mid, spelling, 4)
        s.play([3, 6], message_id=mid)
        row = s.wait_state(mid, "cancelled", "sent")
    assert (row["state"], row["reason"]) == ("cancelled", "delivered_per_report")
    assert s.fake.sends == []
    assert any(r.path == f"/v3/sent-messages/{mid}/delivery-report" for r in s.fake.requests)


def test_undelivered_report_lets_the_resend_go(tmp_path: Path) -> None:
    """A report showing the failure (or nothing for the recipient) changes nothing."""
    with fallback(tmp_path) as s:
        mid = 4444
        s.fake.sent.add(mid, [PHONE], "Your code: 42")
        s.fake.sent.status(mid, PHONE, 6)
        s.fake.sent.status(mid, "+15550009999", 4)  # someone else's delivery
        s.play([3, 6], message_id=mid)
        s.wait_state(mid, "sent")
    assert len(s.fake.sends) == 1


class Answers:
    """A stand-in client answering each GET from a dict (path → data or exception)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(path)
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def test_text_is_checked_and_cached() -> None:
    """data.id must be the id asked for; answers (and misses) are cached."""
    client = Answers(
        {
            "sent-messages/1": {"id": 1, "message": "hello"},
            "sent-messages/2": {"id": 3, "message": "someone else's"},
            "sent-messages/4": MTARejected("not found", http_code=404),
        }
    )
    reader = ReadBack(client)

    async def read() -> list[str | None]:
        return [await reader.text(i) for i in ("1", "1", "2", "4", "4", "not-a-number")]

    assert asyncio.run(read()) == ["hello", "hello", None, None, None, None]
    assert client.calls == ["sent-messages/1", "sent-messages/2", "sent-messages/4"]


def test_an_unavailable_mta_is_asked_again_not_taken_for_unknown_text() -> None:
    """A 5xx or an unreachable MTA while reading the text raises (the outbox tries the
    resend later) and caches nothing: the next read asks again and finds the text."""
    client = Answers({"sent-messages/7": MTAUnavailable("502 from MTA", http_code=502)})
    reader = ReadBack(client)
    with pytest.raises(MTAUnavailable):
        asyncio.run(reader.text("7"))
    client.answers["sent-messages/7"] = {"id": 7, "message": "hello"}
    assert asyncio.run(reader.text("7")) == "hello"


@pytest.mark.parametrize(
    ("data", "delivered"),
    [
        ({"rows": [{"number": "5551230000", "status": "Delivered"}]}, True),
        ({"recipients": [{"phoneNumber": "+15551230000", "statusCode": 4}]}, True),
        ({"number": "+15551230000", "status": 4}, True),
        ({"rows": [{"number": "+15551230000", "status": "undelivered"}]}, False),
        ({"rows": "delivered"}, False),
        ({"rows": [{"status": "delivered"}]}, False),  # whose delivery? unknown
        ({"weird": {"nested": True}}, False),
        ({}, False),
    ],
)
def test_delivery_report_is_read_tolerantly(data: dict[str, Any], delivered: bool) -> None:
    """Known shapes are read; any shape not readable changes nothing (False)."""
    reader = ReadBack(Answers({"sent-messages/9/delivery-report": data}))
    assert asyncio.run(reader.delivered("9", PHONE)) is delivered


def test_reads_stay_under_their_share_of_the_general_limit() -> None:
    """Past its per-minute share, read-back skips reads instead of hammering MTA."""
    now = [0.0]
    answers = {f"sent-messages/{i}/delivery-report": {} for i in range(5)}
    client = Answers(answers)
    reader = ReadBack(client, per_minute=3, clock=lambda: now[0])

    async def reads() -> None:
        for i in range(5):
            await reader.delivered(str(i), PHONE)

    asyncio.run(reads())
    assert len(client.calls) == 3
    now[0] = 61.0
    asyncio.run(reader.delivered("4", PHONE))
    assert len(client.calls) == 4


def test_text_reads_wait_for_a_slot() -> None:
    """A text read past the share waits until a slot frees up instead of giving up."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    client = Answers({f"sent-messages/{i}": {"id": i, "message": f"t{i}"} for i in range(3)})
    reader = ReadBack(client, per_minute=2, clock=lambda: now[0], sleep=sleep)

    async def reads() -> list[str | None]:
        return [await reader.text(str(i)) for i in range(3)]

    assert asyncio.run(reads()) == ["t0", "t1", "t2"]
    assert now[0] == 60.0
