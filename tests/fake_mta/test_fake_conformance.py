"""The fake MTA against fixtures written from MTA's documentation (tests/fake_mta/fixtures/mta/).

The receiver and the fake once shared a wrong assumption (1-based pages) and the suite
stayed green; these checks hold the fake to what MTA documents instead, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.fake_mta import (
    FakeMTA,
    TimelineMessage,
    opt_in_event,
    play_inbound,
    reply_event,
    running_fake_mta,
    running_server,
    sign,
    timeline_events,
)

from ..conftest import free_port, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "mta"
KEY = "test-api-key"
SECRET = "s" * 128


def fixture(name: str) -> Any:
    """One documented answer, parsed."""
    return json.loads((FIXTURES / name).read_text())


def mismatches(documented: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` lacks a documented field or has another JSON type; a documented
    null accepts anything (a nullable field), extra fields are allowed."""
    if documented is None:
        return []
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where}: object expected, got {type(actual).__name__}"]
        return [
            problem
            for key, value in documented.items()
            for problem in (
                mismatches(value, actual[key], f"{where}.{key}")
                if key in actual
                else [f"{where}.{key}: missing"]
            )
        ]
    if isinstance(documented, list):
        if not isinstance(actual, list):
            return [f"{where}: array expected, got {type(actual).__name__}"]
        if not documented:
            return []
        return [
            p
            for i, item in enumerate(actual)
            for p in mismatches(documented[0], item, f"{where}[{i}]")
        ]
    kinds = {bool: "boolean", int: "number", float: "number", str: "string"}
    want, got = kinds.get(type(documented)), kinds.get(type(actual))
    return [] if want == got else [f"{where}: {want} expected, got {got or type(actual).__name__}"]


def test_mismatches_can_fail() -> None:
    """The shape check reports missing fields and wrong types (it is not vacuous)."""
    assert mismatches({"a": 1, "b": {"c": "x"}}, {"b": {"c": 2}}) == [
        "$.a: missing",
        "$.b.c: string expected, got number",
    ]
    assert mismatches({"a": [True]}, {"a": [1]}) == ["$.a[0]: boolean expected, got number"]
    assert mismatches({"a": None}, {"a": 5}) == []


@pytest.fixture
def fake() -> FakeMTA:
    """A fresh fake MTA account, pages from 0 as documented."""
    return FakeMTA(KEY)


@pytest.fixture
def client(fake: FakeMTA) -> Iterator[httpx.Client]:
    """An httpx client on the fake's base URL with the right key."""
    with (
        running_fake_mta(fake) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as c,
    ):
        yield c


def registration(event: str = "delivery-status", n: int = 0) -> dict[str, Any]:
    """A POST /webhooks body."""
    url = f"https://example.com/webhooks/mta/{n}?event={event}"
    return {"event": event, "url": url, "secret": SECRET, "retryOnError": True}


def test_webhook_management_answers_as_documented(client: httpx.Client) -> None:
    """Register, list (parameterless: page 0, pageSize 25, total) and delete match the docs."""
    created = client.post("/webhooks", json=registration())
    assert mismatches(fixture("webhook_created.json"), created.json()) == []
    client.post("/webhooks", json=registration("message-reply"))
    listed = client.get("/webhooks")
    assert listed.url.query == b""
    assert mismatches(fixture("webhooks_list.json"), listed.json()) == []
    data = listed.json()["data"]
    assert (data["page"], data["pageSize"], data["total"]) == (0, 25, 2)
    deleted = client.delete("/webhooks/1")
    assert mismatches(fixture("webhook_deleted.json"), deleted.json()) == []


def test_default_pages_hold_25_and_count_from_0(fake: FakeMTA, client: httpx.Client) -> None:
    """30 registrations: page 0 holds 25, page 1 the other 5, page 2 none; ids in order."""
    for n in range(30):
        fake.add_webhook("message-reply", f"https://a.example/{n}", SECRET, {})
    pages = [client.get("/webhooks", params={"page": p}).json()["data"] for p in range(3)]
    assert [len(p["rows"]) for p in pages] == [25, 5, 0]
    assert [p["page"] for p in pages] == [0, 1, 2]
    assert [r["id"] for p in pages for r in p["rows"]] == list(range(1, 31))


def test_one_based_switch(fake: FakeMTA, client: httpx.Client) -> None:
    """first_page=1: the first page is 1 (and echoed so); page 0 is read as page 1."""
    fake.first_page = 1
    for n in range(30):
        fake.add_webhook("message-reply", f"https://a.example/{n}", SECRET, {})
    first = client.get("/webhooks").json()["data"]
    second = client.get("/webhooks", params={"page": 2}).json()["data"]
    assert (first["page"], len(first["rows"]), second["page"], len(second["rows"])) == (1, 25, 2, 5)


def test_the_cli_flag_serves_one_based_pages() -> None:
    """python -m receiver.fake_mta --one-based-pages starts a fake that pages from 1."""
    port = free_port()
    argv = [sys.executable, "-m", "receiver.fake_mta", "--port", str(port), "--api-key", KEY]
    argv += ["--one-based-pages", "--log-level", "warning"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            url = f"http://127.0.0.1:{port}/v3/webhooks"
            headers = {"Authorization": f"Bearer {KEY}"}

            def page() -> Any:
                try:
                    return httpx.get(url, headers=headers, timeout=1).json()["data"]["page"]
                except httpx.HTTPError:
                    return None

            assert wait_for(page, timeout=20) == 1
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_send_and_sent_message_answer_as_documented(client: httpx.Client) -> None:
    """/send answers messageId etc.; /sent-messages/{id} the envelope with id, recipients,
    message, url; an unknown id is a 404 with MTA's error body."""
    sent = client.post("/send", json={"subscribers": ["+15555555555"], "message": "hi"})
    assert mismatches(fixture("send_answer.json"), sent.json()) == []
    message_id = sent.json()["data"]["messageId"]
    read = client.get(f"/sent-messages/{message_id}")
    assert mismatches(fixture("sent_message.json"), read.json()) == []
    assert read.json()["data"]["id"] == message_id
    assert read.json()["data"]["recipients"] == ["+15555555555"]
    assert read.json()["data"]["message"] == "hi"
    missing = client.get("/sent-messages/999")
    assert missing.status_code == 404
    assert set(fixture("error_400.json")) <= set(missing.json())
    report = client.get(f"/sent-messages/{message_id}/delivery-report")
    assert report.status_code == 200
    assert report.json()["data"]["rows"] == []


@pytest.mark.parametrize(
    "content",
    [{"templateId": 12}, {"image": "https://example.com/a.png"}],
    ids=["template", "image"],
)
def test_template_or_image_only_sends_are_accepted(
    client: httpx.Client, content: dict[str, Any]
) -> None:
    """A send with a templateId or an image and no message is valid (docs: one of three)."""
    answer = client.post("/send", json={"subscribers": ["+15555555555"], **content})
    assert answer.status_code == 200, answer.text
    assert client.post("/send", json={"subscribers": ["+15555555555"]}).status_code == 400


def test_errors_answer_as_documented(client: httpx.Client) -> None:
    """A 400 and a 401 carry MTA's documented error body and type/name pairs."""
    too_long = client.post("/send", json={"subscribers": ["+15555555555"], "message": "x" * 161})
    assert too_long.status_code == 400
    assert mismatches(fixture("error_400.json"), too_long.json()) == []
    assert (too_long.json()["type"], too_long.json()["name"]) == (
        "bad_request_error",
        "MTABadRequestError",
    )
    refused = client.get("/webhooks", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert mismatches(fixture("error_401.json"), refused.json()) == []
    assert refused.json()["name"] == "MTAUnauthorizedError"


def test_rate_limit_headers_on_every_answer(fake: FakeMTA, client: httpx.Client) -> None:
    """X-RateLimit-* (Reset in ms) and X-Request-ID on every answer; past the general
    30/min limit, a 429 with Retry-After."""
    names = fixture("headers.json")
    answers = [
        client.post("/send", json={"subscribers": ["+15555555555"], "message": "hi"}),
        client.get("/webhooks"),
        client.get("/sent-messages/1"),
        client.get("/auth/verify-api-key"),
    ]
    for answer in answers:
        missing = [n for n in names["every_answer"] if n not in answer.headers]
        assert missing == [], answer.request.url
    assert 0 < int(answers[1].headers["X-RateLimit-Reset"]) <= 60_000
    fake.general_rate_limit = 5
    limited = [client.get("/webhooks") for _ in range(3)][-1]
    assert limited.status_code == 429
    assert [n for n in names["too_many_requests"] if n not in limited.headers] == []


def test_delivery_status_webhook_has_the_documented_v1_fields() -> None:
    """The fake's delivery-status body carries every V1 field with its documented type."""
    message = TimelineMessage(1, "+15555555555", "hi", "order-1", {"campaign": "spring"}, "Acme")
    body = json.loads(timeline_events(message, [6], include_send=False)[0].body)
    assert mismatches(fixture("delivery_status_v1.json"), body) == []


def test_delivery_report_follows_played_statuses(fake: FakeMTA, client: httpx.Client) -> None:
    """After an auto timeline played 3 then 4, the report shows the recipient delivered."""
    fake.auto_timeline = (3, 4)
    sent = client.post("/send", json={"subscribers": ["+15555555555"], "message": "hi"})
    message_id = sent.json()["data"]["messageId"]

    def delivered() -> bool:
        rows = client.get(f"/sent-messages/{message_id}/delivery-report").json()["data"]["rows"]
        return rows == [{"number": "+15555555555", "status": "delivered", "statusCode": 4}]

    assert wait_for(delivered)


def test_reply_and_opt_in_playback_reach_their_registrations(fake: FakeMTA) -> None:
    """A reply (both spellings) and an opt-in go, signed, to registrations of their type."""
    seen: list[tuple[str, dict[str, Any], bool]] = []

    async def hook(request: Request) -> Response:
        body = await request.body()
        seen.append(
            (
                request.query_params["event"],
                json.loads(body),
                request.headers["x-signature"] == sign(SECRET, body),
            )
        )
        return Response(status_code=200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with running_server(app) as root:
        for event in ("message-reply", "number-opt-in", "delivery-status"):
            fake.add_webhook(event, f"{root}/hook?event={event}", SECRET, {})

        async def play() -> None:
            await play_inbound(
                fake, reply_event("+15550001111", "+15559990000", "STOP", reply_id=7)
            )
            await play_inbound(
                fake, reply_event("5550001111", "+15559990000", "hi", spelling="aws")
            )
            await play_inbound(fake, opt_in_event("+15550001111"))

        asyncio.run(play())
    assert [(event, ok) for event, _, ok in seen] == [
        ("message-reply", True),
        ("message-reply", True),
        ("number-opt-in", True),
    ]
    assert seen[0][1]["fromNumber"] == "+15550001111"
    assert seen[0][1]["toNumber"] == "+15559990000"
    assert seen[0][1]["replyId"] == 7
    assert seen[1][1]["originationNumber"] == "5550001111"
    assert seen[2][1]["optInType"] == "keyword"


DELIVERY_WORDS = {"sent", "delivered", "undelivered", "undeliverable", "unknown", "rejected"}


def test_deliveries_list_the_latest_status_as_documented(
    fake: FakeMTA, client: httpx.Client
) -> None:
    """GET /deliveries: one row per recipient, latest status as one of MTA's six words,
    paged like every list (0-based, 25, echoed), date filters applied."""
    day = 86_400.0
    for n in range(30):
        fake.sent.add(n + 1, [f"+1555000{n:04d}"], "hi", f"ext-{n}")
        fake.sent.status(n + 1, f"+1555000{n:04d}", 3, at=1_767_225_600.0 + n)  # 2026-01-01
        fake.sent.status(n + 1, f"+1555000{n:04d}", 4 if n % 2 else 9, at=1_767_225_600.0 + n)
    fake.sent.status(99, "+15550009999", 10, at=1_767_225_600.0 + 3 * day)  # 2026-01-04
    first = client.get("/deliveries")
    assert first.url.query == b""
    assert mismatches(fixture("deliveries_list.json"), first.json()) == []
    data = first.json()["data"]
    assert (data["page"], data["pageSize"], data["total"], len(data["rows"])) == (0, 25, 31, 25)
    assert {r["status"] for r in data["rows"]} <= DELIVERY_WORDS
    assert data["rows"][0] == {
        "messageId": 1,
        "externalId": "ext-0",
        "to": "+15550000000",
        "status": "undelivered",
        "date": "2026-01-01T00:00:00.000Z",
        "carrier": None,
    }
    rest = client.get("/deliveries", params={"page": 1}).json()["data"]["rows"]
    assert [r["status"] for r in rest][-1] == "undeliverable"  # 10 is no plain word
    window = {"filters[startDate]": "2026-01-01", "filters[endDate]": "2026-01-01"}
    assert client.get("/deliveries", params=window).json()["data"]["total"] == 30
    later = client.get("/deliveries", params={"filters[startDate]": "2026-01-02"})
    assert [r["messageId"] for r in later.json()["data"]["rows"]] == [99]
    bad = client.get("/deliveries", params={"filters[startDate]": "soon"})
    assert bad.status_code == 400


def test_an_outage_keeps_the_webhooks_but_not_the_record(fake: FakeMTA) -> None:
    """With webhooks down the timeline still happens (/deliveries shows it) and no
    webhook is delivered; back up, the next send's webhooks go out again."""
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with (
        running_server(app) as hook_url,
        running_fake_mta(fake) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        client.post("/webhooks", json={**registration(), "url": f"{hook_url}/hook"})
        fake.auto_timeline = (3, 9)
        fake.webhooks_down = True
        client.post("/send", json={"subscribers": ["+15555550001"], "message": "a"})

        def recorded() -> list[Any]:
            rows: list[Any] = client.get("/deliveries").json()["data"]["rows"]
            return [(r["messageId"], r["status"]) for r in rows]

        assert wait_for(lambda: recorded() == [(1, "undelivered")])
        assert received == []
        assert fake.webhook_deliveries == []
        fake.webhooks_down = False
        client.post("/send", json={"subscribers": ["+15555550002"], "message": "b"})
        assert wait_for(lambda: len(received) == 2)
        assert {json.loads(b)["messageId"] for b in received} == {2}
