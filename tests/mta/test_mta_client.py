"""The MTA client against scripted answers (httpx.MockTransport): headers and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from receiver.mta import (
    MTAClient,
    MTAOutcomeUnknown,
    MTARejected,
    MTAUnavailable,
    Rate,
    SendWithdrawn,
    SlidingWindowLimiter,
)
from receiver.settings import Secret


class Clock:
    """A limiter clock moved only by the limiter's own sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(handler: Callable[[httpx.Request], httpx.Response], clock: Clock) -> MTAClient:
    limiter = SlidingWindowLimiter(Rate(25, 15.0), clock=clock, sleep=clock.sleep)
    return MTAClient(
        Secret("k"),
        limiter,
        base_url="http://mta.test/v3",
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        retry_base=0.01,
    )


@pytest.mark.parametrize(
    ("headers", "pause"),
    [
        pytest.param({"RateLimit-Remaining": "0", "RateLimit-Reset": "4000"}, 4.0, id="ms"),
        pytest.param({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2500"}, 2.5, id="x-"),
        pytest.param(
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3000"}, 3.0, id="lowercase"
        ),
        pytest.param(
            {
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "1000",
                "X-RateLimit-Remaining": "5",
                "X-RateLimit-Reset": "9000",
            },
            1.0,
            id="ratelimit-first",
        ),
        # An epoch in ms (docs/mta.md: the unit in practice is unknown) is clamped.
        pytest.param({"RateLimit-Remaining": "0", "RateLimit-Reset": "1717000000000"}, 60.0),
        pytest.param({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "-5"}, None),
    ],
)
def test_exhausted_rate_limit_pauses_the_next_send(
    headers: dict[str, str], pause: float | None
) -> None:
    """Remaining 0 with a Reset (ms), from RateLimit-* first or X-RateLimit-*, makes the
    next send wait it out, clamped to 0-60 s."""
    clock = Clock()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"messageId": 7}}, headers=headers)

    mta = client(answer, clock)

    async def two_sends() -> None:
        await mta.send({"subscribers": ["+1"], "message": "a"}, request_id="r1")
        await mta.send({"subscribers": ["+1"], "message": "b"}, request_id="r2")
        await mta.aclose()

    asyncio.run(two_sends())
    assert clock.slept == ([pause] if pause else [])


def test_an_exhausted_read_limit_does_not_pause_sends() -> None:
    """Remaining 0 on a read (MTA's general 30/min limit) leaves /send's own limit alone."""
    clock = Clock()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": "4000"}
            return httpx.Response(200, json={"data": {"rows": []}}, headers=headers)
        return httpx.Response(200, json={"data": {"messageId": 7}})

    mta = client(answer, clock)

    async def read_then_send() -> None:
        await mta.request("GET", "webhooks")
        await mta.send({"subscribers": ["+1"], "message": "a"}, request_id="r1")
        await mta.aclose()

    asyncio.run(read_then_send())
    assert clock.slept == []


def test_rejection_keeps_mtas_message_and_request_id() -> None:
    """A 400 becomes MTARejected with MTA's message and requestId, after one attempt."""
    clock = Clock()
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {
            "httpCode": 400,
            "message": "Message too long",
            "requestId": "req-9",
            "type": "bad_request_error",
            "name": "MTABadRequestError",
        }
        return httpx.Response(400, json=body)

    mta = client(answer, clock)
    with pytest.raises(MTARejected) as caught:
        asyncio.run(mta.send({"subscribers": ["+1"], "message": "x"}, request_id="r1"))
    assert caught.value.request_id == "req-9"
    assert "Message too long" in str(caught.value)
    assert len(calls) == 1


def test_send_response_without_data_wrapper() -> None:
    """The send answer is read with or without MTA's ``data`` wrapper."""
    clock = Clock()
    mta = client(lambda r: httpx.Response(200, json={"messageId": 12, "totalSent": 1}), clock)
    result = asyncio.run(mta.send({"subscribers": ["+1"], "message": "x"}, request_id="r"))
    assert (result.message_id, result.total_sent) == ("12", 1)


def test_read_timeout_is_an_unknown_outcome_never_retried() -> None:
    """A timeout after the request left is MTAOutcomeUnknown, with no second attempt."""
    clock = Clock()
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    mta = client(answer, clock)
    with pytest.raises(MTAOutcomeUnknown):
        asyncio.run(mta.send({"subscribers": ["+1"], "message": "x"}, request_id="r"))
    assert len(calls) == 1


def scripted(
    *answers: httpx.Response,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A handler giving ``answers`` in order (the last one repeats); the request ids it saw."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-request-id", ""))
        return answers[min(len(seen), len(answers)) - 1]

    return answer, seen


def send_once(mta: MTAClient, **kwargs: object) -> None:
    async def run() -> None:
        try:
            await mta.send({"subscribers": ["+1"], "message": "x"}, request_id="r1", **kwargs)  # type: ignore[arg-type]
        finally:
            await mta.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(502, text="<html>Bad Gateway</html>"), id="502-gateway"),
        pytest.param(httpx.Response(504, text=""), id="504-gateway"),
        pytest.param(httpx.Response(409, json={"message": "duplicate request"}), id="409"),
    ],
)
def test_answers_that_may_follow_a_processed_send_are_unknown_not_retried(
    answer: httpx.Response,
) -> None:
    """A gateway's 5xx (not MTA's error body) or a 409 may come after MTA processed the
    send: one attempt, `MTAOutcomeUnknown`, never a blind second POST."""
    handler, seen = scripted(answer, httpx.Response(200, json={"messageId": 1}))
    with pytest.raises(MTAOutcomeUnknown):
        send_once(client(handler, Clock()))
    assert seen == ["r1"]


def test_mtas_own_500_is_retried() -> None:
    """MTA's own 500 error body means it did not process the send: retried, same id."""
    mta_500 = httpx.Response(500, json={"httpCode": 500, "message": "oops", "requestId": "q"})
    handler, seen = scripted(mta_500, httpx.Response(200, json={"messageId": 1}))
    send_once(client(handler, Clock()))
    assert seen == ["r1", "r1"]


def test_refused_key_on_a_send_is_unavailable_not_final() -> None:
    """A 401 on a send (a key being fixed or rotated) is `MTAUnavailable`: try later."""
    refused = httpx.Response(401, json={"httpCode": 401, "message": "bad key"})
    handler, seen = scripted(refused)
    with pytest.raises(MTAUnavailable, match="RECEIVER_MTA_API_KEY"):
        send_once(client(handler, Clock()))
    assert seen == ["r1"]


def test_ready_is_asked_before_every_attempt_and_can_call_the_send_off() -> None:
    """After a 429 pause, ``ready`` saying no raises `SendWithdrawn`: nothing more is sent."""
    limited = httpx.Response(429, headers={"Retry-After": "3"}, json={"httpCode": 429})
    handler, seen = scripted(limited, httpx.Response(200, json={"messageId": 1}))
    asked: list[int] = []

    async def ready() -> bool:
        asked.append(len(seen))
        return len(asked) == 1  # the DELIVERED came in during the pause

    clock = Clock()
    with pytest.raises(SendWithdrawn):
        send_once(client(handler, clock), ready=ready)
    assert seen == ["r1"]
    assert asked == [0, 1]
    assert sum(clock.slept) == pytest.approx(3.0), "the Retry-After pause was waited out"


def test_a_failing_send_limit_is_unavailable_and_sends_nothing() -> None:
    """When the send limit cannot be asked (its database is down), nothing has left:
    `MTAUnavailable` (try later), not an unknown outcome."""
    handler, seen = scripted(httpx.Response(200, json={"messageId": 1}))
    mta = client(handler, Clock())

    class Broken:
        async def acquire(self) -> float:
            raise OSError("database gone")

    mta.limiter = Broken()  # type: ignore[assignment]
    with pytest.raises(MTAUnavailable, match="not sent: OSError: database gone"):
        send_once(mta)
    assert seen == []


def test_a_429_on_a_read_waits_its_retry_after() -> None:
    """A 429 on a call outside the send limiter (a list, a read-back) waits Retry-After
    before trying again, instead of hammering MTA's general limit."""
    clock = Clock()
    answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"httpCode": 429})]
    answers.append(httpx.Response(200, json={"data": {"rows": []}}))

    def answer(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    mta = client(answer, clock)

    async def read() -> dict[str, object]:
        try:
            return await mta.request("GET", "webhooks")
        finally:
            await mta.aclose()

    assert asyncio.run(read()) == {"rows": []}
    assert clock.slept == [7.0]
