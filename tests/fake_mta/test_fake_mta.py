"""The fake MTA behaves like docs/mta.md says MTA does, over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    Status,
    TimelineMessage,
    mta_fallback,
    play_timeline,
    running_fake_mta,
    running_server,
)

KEY = "test-api-key-1"
SECRET = "a" * 128  # docs/mta.md: secrets are typically 128 hex characters
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Hit:
    """One webhook the test receiver got."""

    event: str | None
    body: bytes
    matched: str | None  # the secret whose HMAC matched X-Signature, if any

    def json(self) -> Any:
        return json.loads(self.body)


class Inbox:
    """A tiny webhook receiver: records bodies, checks X-Signature, answers 200 or 401."""

    def __init__(self, *secrets: str, fail_first: int = 0) -> None:
        self.secrets = secrets
        self.fail_first = fail_first
        self.hits: list[Hit] = []
        self._cond = threading.Condition()

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            raw = await request.body()
            given = request.headers.get("x-signature", "")
            matched = next(
                (
                    s
                    for s in self.secrets
                    if hmac.compare_digest(
                        given, hmac.new(s.encode(), raw, hashlib.sha256).hexdigest()
                    )
                ),
                None,
            )
            with self._cond:
                self.hits.append(Hit(request.query_params.get("event"), raw, matched))
                self._cond.notify_all()
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return Response(status_code=500)
            return Response(status_code=200 if matched else 401)

        return Starlette(routes=[Route("/webhooks/mta", hook, methods=["POST"])])

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Hit]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.hits) >= n, timeout), self.hits
            return list(self.hits)


@pytest.fixture
def fake() -> FakeMTA:
    """A fresh fake MTA account."""
    return FakeMTA(KEY)


@pytest.fixture
def base_url(fake: FakeMTA) -> Iterator[str]:
    """The fake served on loopback: ``http://127.0.0.1:P/v3``."""
    with running_fake_mta(fake) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    """An httpx client on the fake's base URL with the right key."""
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, headers=auth, timeout=5.0) as c:
        yield c


def a_send(**overrides: Any) -> dict[str, Any]:
    """A valid /send body."""
    return {"subscribers": ["+15551234567"], "message": "hello", **overrides}


def test_send_is_recorded_and_answered_with_message_id(fake: FakeMTA, client: httpx.Client) -> None:
    """A valid /send gets incrementing messageIds, MTA's answer shape, and is recorded."""
    body = a_send(subscribers=["+15551230001", "+15551230002"], externalId="order-1")
    first = client.post("/send", json=body, headers={"X-Request-Id": "req-1"})
    second = client.post("/send", json=a_send())
    assert first.status_code == 200
    assert first.json() == {
        "success": True,
        "data": {
            "messageId": 1,
            "totalSent": 2,
            "totalFailedInternationalRecipients": 0,
            "message": "Message Sent",
        },
    }
    assert second.json()["data"]["messageId"] == 2
    assert first.headers["RateLimit-Limit"] == "25"
    assert first.headers["RateLimit-Remaining"] == "24"
    assert int(first.headers["RateLimit-Reset"]) == 15000
    sends = fake.sends
    assert [s.message_id for s in sends] == [1, 2]
    assert sends[0].body == body
    assert sends[0].request_id == "req-1"
    assert sends[0].headers["authorization"] == f"Bearer {KEY}"
    assert [r.path for r in fake.requests] == ["/v3/send", "/v3/send"]


def test_send_can_answer_without_the_data_wrapper(fake: FakeMTA, client: httpx.Client) -> None:
    """With wrap_send_response off the /send answer is the bare object."""
    fake.wrap_send_response = False
    assert client.post("/send", json=a_send()).json()["messageId"] == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEY}"])
def test_bad_api_key_is_401(fake: FakeMTA, base_url: str, authorization: str | None) -> None:
    """/send and verify-api-key answer 401 with MTA's error body to a missing or wrong key."""
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=base_url, headers=headers) as anon:
        sent = anon.post("/send", json=a_send())
        verified = anon.get("/auth/verify-api-key")
    assert sent.status_code == verified.status_code == 401
    error = sent.json()
    assert error["httpCode"] == 401
    assert set(error) == {"httpCode", "message", "timestamp", "type", "name", "requestId"}
    assert error["requestId"] == sent.headers["X-Request-ID"]
    assert fake.sends == []


def test_verify_api_key_accepts_the_right_key(client: httpx.Client) -> None:
    """GET /auth/verify-api-key is 200 for the configured key."""
    assert client.get("/auth/verify-api-key").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no recipients"},
        {"subscribers": "+15551234567", "message": "not a list"},
        {"subscribers": ["+15551234567"]},
        {"subscribers": ["+15551234567"], "message": 42},
        {"subscribers": ["+15551234567"], "message": "x" * 161},
        ["not", "an", "object"],
    ],
)
def test_bad_send_body_is_400(fake: FakeMTA, client: httpx.Client, body: Any) -> None:
    """A /send without a subscribers list and a (≤160 char SMS) message string is a 400."""
    response = client.post("/send", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "bad_request_error"
    assert response.json()["name"] == "MTABadRequestError"
    assert fake.sends == []


def test_rate_limit_gives_429_with_retry_after_and_counts_violations() -> None:
    """The 26th send within 15 s is a 429 with Retry-After, counted; the window then slides."""
    clock = Clock()
    fake = FakeMTA(KEY, clock=clock)
    with (
        running_fake_mta(fake) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        for i in range(25):
            ok = client.post("/send", json=a_send())
            assert ok.status_code == 200
            assert ok.headers["RateLimit-Remaining"] == str(24 - i)
        limited = client.post("/send", json=a_send())
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "15"
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert limited.json()["httpCode"] == 429
        assert fake.rate_limit_violations == 1
        clock.now += 15.0
        assert client.post("/send", json=a_send()).status_code == 200
    assert fake.rate_limit_violations == 1
    assert len(fake.sends) == 26


def test_fault_429_uses_its_retry_after(fake: FakeMTA, client: httpx.Client) -> None:
    """An injected 429 carries the configured Retry-After and is not a violation."""
    fake.fail_next(1, "429", retry_after=7)
    limited = client.post("/send", json=a_send())
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert client.post("/send", json=a_send()).status_code == 200
    assert fake.rate_limit_violations == 0


def test_fault_500_then_recovers(fake: FakeMTA, client: httpx.Client) -> None:
    """Two injected 500s are answered with MTA's error body, then sends succeed."""
    fake.fail_next(2, "500")
    assert [client.post("/send", json=a_send()).status_code for _ in range(3)] == [500, 500, 200]
    assert [s.message_id for s in fake.sends] == [1]


@pytest.mark.slow
def test_fault_slow_answers_late(fake: FakeMTA, client: httpx.Client) -> None:
    """A slow fault answers normally after the delay."""
    fake.fail_next(1, "slow", delay=0.3)
    started = time.monotonic()
    response = client.post("/send", json=a_send())
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.slow
def test_fault_slow_past_client_timeout_still_sends(fake: FakeMTA, base_url: str) -> None:
    """A client that gives up on a slow send still leaves a recorded send behind."""
    fake.fail_next(1, "slow", delay=0.3)
    auth = {"Authorization": f"Bearer {KEY}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base_url}/send", json=a_send(), headers=auth, timeout=0.05)
    assert fake.wait_for(lambda: len(fake.sends) == 1)


@pytest.mark.slow
def test_fault_hang_times_the_client_out(fake: FakeMTA, client: httpx.Client) -> None:
    """A hang never answers: httpx times out, the fake lets go, the next send works."""
    fake.fail_next(1, "hang")
    with pytest.raises(httpx.ReadTimeout):
        client.post("/send", json=a_send(), timeout=0.2)
    assert fake.wait_for(lambda: fake.hanging == 0)
    assert client.post("/send", json=a_send()).status_code == 200
    assert [s.message_id for s in fake.sends] == [1]


def test_hang_does_not_block_shutdown(fake: FakeMTA) -> None:
    """Stopping the server ends a hanging request at once (the client sees a drop)."""
    fake.fail_next(1, "hang")
    with ThreadPoolExecutor(1) as pool:
        with running_fake_mta(fake) as url:
            pending = pool.submit(
                httpx.post,
                f"{url}/send",
                json=a_send(),
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=30.0,
            )
            assert fake.wait_for(lambda: fake.hanging == 1)
            started = time.monotonic()
        assert time.monotonic() - started < 5.0
        with pytest.raises(httpx.RemoteProtocolError):
            pending.result(timeout=5.0)


def test_fault_drop_closes_without_answer(fake: FakeMTA, client: httpx.Client) -> None:
    """A drop closes the connection before any byte: httpx raises RemoteProtocolError."""
    fake.fail_next(1, "drop")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post("/send", json=a_send())
    assert fake.sends == []
    assert client.post("/send", json=a_send()).status_code == 200


def test_fault_drop_after_send_records_the_send(fake: FakeMTA, client: httpx.Client) -> None:
    """drop-after-send loses the answer but the message was sent (the resend hazard)."""
    fake.fail_next(1, "drop-after-send")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/send", json=a_send())
    assert [s.message_id for s in fake.sends] == [1]


def test_faults_and_request_log_over_http(fake: FakeMTA, client: httpx.Client) -> None:
    """/_fake/faults queues faults and /_fake/requests lists what arrived."""
    root = str(client.base_url).removesuffix("/v3/")
    assert httpx.post(f"{root}/_fake/faults", json={"kind": "nope"}).status_code == 400
    queued = httpx.post(f"{root}/_fake/faults", json={"kind": "500", "count": 1})
    assert queued.json() == {"queued": 1, "kind": "500"}
    assert client.post("/send", json=a_send()).status_code == 500
    assert client.post("/send", json=a_send(), headers={"X-Request-Id": "r2"}).status_code == 200
    log = httpx.get(f"{root}/_fake/requests").json()["requests"]
    assert [(r["method"], r["path"]) for r in log] == [("POST", "/v3/send")] * 2
    assert log[1]["json"] == a_send()
    assert log[1]["headers"]["x-request-id"] == "r2"
    assert httpx.get(f"{root}/_fake/sends").json()["sends"][0]["messageId"] == 1


def test_fail_next_rejects_unknown_kinds(fake: FakeMTA) -> None:
    """fail_next refuses a fault kind it does not know."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next(1, "teapot")  # type: ignore[arg-type]


def test_webhooks_crud(fake: FakeMTA, client: httpx.Client) -> None:
    """Webhooks register (duplicates allowed), list paged without secrets, update, delete."""
    registration = {
        "event": "delivery-status",
        "url": "http://127.0.0.1:9/hook",
        "secret": SECRET,
        "retryOnError": True,
    }
    created = client.post("/webhooks", json=registration)
    duplicate = client.post("/webhooks", json=registration)
    assert created.status_code == duplicate.status_code == 200
    data = created.json()["data"]
    assert data["id"] == 1
    assert duplicate.json()["data"]["id"] == 2
    assert data["event"] == "delivery-status"
    assert data["retryOnError"] is True
    assert "secret" not in data
    assert SECRET not in created.text
    assert client.post("/webhooks", json={"event": "opt-out", "url": "x"}).status_code == 400

    page = client.get("/webhooks", params={"page": 1, "pageSize": 1}).json()["data"]
    assert (page["page"], page["pageSize"], page["total"]) == (1, 1, 2)
    assert [r["id"] for r in page["rows"]] == [2]
    assert SECRET not in client.get("/webhooks").text

    patched = client.patch("/webhooks/1", json={"secret": "b" * 128, "url": "http://new/hook"})
    assert patched.status_code == 200
    assert patched.json()["data"]["url"] == "http://new/hook"
    assert fake.webhooks[0].secret == "b" * 128
    assert client.patch("/webhooks/99", json={"url": "http://x"}).status_code == 404

    deleted = client.delete("/webhooks/2")
    assert deleted.status_code == 200
    assert "message" in deleted.json()
    assert client.delete("/webhooks/2").status_code == 404
    assert [w.id for w in fake.webhooks] == [1]
    fake.delete_returns_204 = True
    assert client.delete("/webhooks/1").status_code == 204


async def test_timeline_playback_delivers_signed_bodies() -> None:
    """play_timeline sends message-send then each status, signed, with ?event=."""
    inbox = Inbox(SECRET)
    message = TimelineMessage(
        message_id=912345,
        destination_number="5551234567",
        text="hello",
        external_id="order-77",
        tags={"campaign": "spring"},
        sender_name="Acme",
    )
    with running_server(inbox.app()) as root:
        results = await play_timeline(f"{root}/webhooks/mta", SECRET, message, mta_fallback())
        forged = await play_timeline(
            f"{root}/webhooks/mta", "wrong", message, [Status.DELIVERED], include_send=False
        )
    assert [r.status_code for r in results] == [200] * 4
    assert [r.status_code for r in forged] == [401]
    hits = inbox.wait_for(5)[:4]
    assert all(h.matched == SECRET for h in hits)
    assert [h.event for h in hits] == ["message-send"] + ["delivery-status"] * 3
    assert hits[0].json() == {
        "messageId": 912345,
        "externalId": "order-77",
        "destinationNumber": "5551234567",
        "tags": {"campaign": "spring"},
        "senderName": "Acme",
        "message": "hello",
        "type": "message-send",
    }
    assert [h.json()["status"] for h in hits[1:]] == [3, 6, 4]
    assert hits[2].json() == {
        "destinationNumber": "5551234567",
        "messageId": 912345,
        "externalId": "order-77",
        "status": 6,
        "tags": {"campaign": "spring"},
        "senderName": "Acme",
        "type": "delivery-status",
    }


def test_auto_timeline_plays_to_every_registration(fake: FakeMTA, client: httpx.Client) -> None:
    """After a send, registered webhooks (duplicates too) get the timeline, signed by each."""
    inbox = Inbox("s1", "s2", "s3")
    fake.auto_timeline = [Status.SENT, Status.DELIVERED]
    with running_server(inbox.app()) as root:
        url = f"{root}/webhooks/mta"
        for event, secret in [
            ("message-send", "s1"),
            ("delivery-status", "s2"),
            ("delivery-status", "s3"),
        ]:
            client.post("/webhooks", json={"event": event, "url": url, "secret": secret})
        sent = client.post("/send", json=a_send(externalId="e-1", tags={"k": "v"}))
        assert sent.status_code == 200
        assert fake.wait_for(lambda: len(fake.webhook_deliveries) == 5)
    assert all(d.result.ok and d.message_id == 1 for d in fake.webhook_deliveries)
    hits = inbox.wait_for(5)
    assert [(h.event, h.matched) for h in hits] == [
        ("message-send", "s1"),
        ("delivery-status", "s2"),
        ("delivery-status", "s3"),
        ("delivery-status", "s2"),
        ("delivery-status", "s3"),
    ]
    assert [h.json().get("status") for h in hits] == [None, 3, 3, 4, 4]
    assert all(h.json()["externalId"] == "e-1" and h.json()["tags"] == {"k": "v"} for h in hits)


def test_auto_timeline_retries_on_error(fake: FakeMTA, client: httpx.Client) -> None:
    """A retryOnError registration gets a failed webhook again (docs/mta.md: at most 2 retries)."""
    inbox = Inbox(SECRET, fail_first=1)
    fake.auto_timeline = [Status.DELIVERED]
    fake.webhook_backoff = 0.0
    with running_server(inbox.app()) as root:
        client.post(
            "/webhooks",
            json={
                "event": "delivery-status",
                "url": f"{root}/webhooks/mta",
                "secret": SECRET,
                "retryOnError": True,
            },
        )
        client.post("/send", json=a_send())
        assert fake.wait_for(lambda: len(fake.webhook_deliveries) == 1)
    (delivery,) = fake.webhook_deliveries
    assert delivery.result.ok
    assert delivery.result.attempts == 2
    assert len(inbox.wait_for(2)) == 2


@pytest.mark.slow
def test_cli_serves_the_fake() -> None:
    """python -m receiver.fake_mta serves /v3 with the given key until terminated."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.fake_mta", "--port", str(port), "--api-key", KEY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v3/auth/verify-api-key"
        deadline = time.monotonic() + 15.0
        status = None
        while status is None and time.monotonic() < deadline:
            try:
                status = httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}).status_code
            except httpx.ConnectError:
                assert process.poll() is None, "the fake MTA exited"
                time.sleep(0.05)  # waiting on another process: nothing to block on
        assert status == 200
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/v3" in out.decode()


def test_several_keys_are_several_accounts() -> None:
    """Two API keys on one fake are two MTA accounts: each lists only its own webhook
    registrations, cannot change or read the other's, reads only its own sent messages,
    and has its own send-rate window (docs/mta.md: the limit is per account)."""
    fake = FakeMTA(["key-of-a", "key-of-b"], rate_limit=1, rate_window=60.0)
    with running_fake_mta(fake) as url:
        a = httpx.Client(base_url=url, headers={"Authorization": "Bearer key-of-a"})
        b = httpx.Client(base_url=url, headers={"Authorization": "Bearer key-of-b"})
        with a, b:
            hook = {"event": "delivery-status", "url": "https://a.example/h", "secret": SECRET}
            created = a.post("/webhooks", json=hook).json()["data"]["id"]
            assert [w["id"] for w in a.get("/webhooks").json()["data"]["rows"]] == [created]
            assert b.get("/webhooks").json()["data"]["rows"] == []
            assert b.delete(f"/webhooks/{created}").status_code == 404
            assert (
                b.patch(f"/webhooks/{created}", json={"url": "https://b.example"}).status_code
                == 404
            )
            send = {"subscribers": ["+15550001111"], "message": "hi"}
            sent = a.post("/send", json=send)
            assert sent.status_code == 200
            message_id = sent.json()["data"]["messageId"]
            assert a.get(f"/sent-messages/{message_id}").status_code == 200
            assert b.get(f"/sent-messages/{message_id}").status_code == 404
            assert b.post("/send", json=send).status_code == 200  # b's own window
            assert a.post("/send", json=send).status_code == 429  # a's is full
    assert [s.api_key for s in fake.sends] == ["key-of-a", "key-of-b"]
    assert fake.rate_limit_violations == 1
