"""The webhook path over real HTTP on loopback: refusals, quarantine, limits, deadlines."""

from __future__ import annotations

import asyncio
import json
import random
import select
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from receiver import Registry, Settings, sign
from receiver.errors import StoreUnavailable
from receiver.metrics import Metrics
from receiver.store import Incoming, IngestResult, create_store
from receiver.web.intake import Intake
from receiver.web.server import MAX_HEADER_BYTES, MAX_PIPELINED

from ..conftest import (
    OLD_SECRET,
    SECRET,
    Server,
    cli,
    delivery,
    encode,
    make_settings,
    running,
)
from ..store.test_store import eventually

LIMIT = 1024  # max_body_bytes of the size tests

# Authentic but unreadable bodies and the reason each is quarantined with.
HOSTILE = [
    pytest.param(b'{"status":"\xff\xfe"}', "not_utf8", id="not-utf8"),
    pytest.param(b'{"messageId": 1,', "invalid_json", id="invalid-json"),
    pytest.param(b'[{"messageId": 1}]', "not_an_object", id="json-array"),
    pytest.param(b"[" * 10_000, "too_deep", id="10000-deep-arrays"),
    pytest.param(b'{"a":' * 10_000, "too_deep", id="10000-deep-objects"),
    pytest.param(b"", "empty_body", id="empty"),
    pytest.param(b'"delivery-status"', "not_an_object", id="json-string"),
]


# --- helpers -----------------------------------------------------------------------------


def count_events(server: Server) -> int:
    """How many rows the events table holds."""
    return int(server.query("SELECT count(*) FROM events")[0][0])


def address(server: Server) -> tuple[str, int]:
    """(host, port) of a running server."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def request_bytes(body: bytes, *, signed: bool = True, headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 POST of ``body`` to the webhook path, as raw bytes."""
    head = (
        b"POST /webhooks/mta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    )
    if signed:
        head += b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n"
    return head + headers + b"\r\n" + body


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic).

    Fails the test if the connection is still open ``within`` seconds from now.
    """
    data = b""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {within}s; got {data!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk


def read_response(sock: socket.socket, within: float = 3) -> bytes:
    """One whole HTTP response (headers and Content-Length body) from a keep-alive socket."""
    data = b""
    deadline = time.monotonic() + within
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) >= length:
                return data
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no whole response within {within}s; got {data!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response; got {data!r}")
        data += chunk


class UnwritableHeartbeat:
    """A real store whose heartbeat write fails, as on a full or read-only disk."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def heartbeat(self, owner: str, now: float | None = None) -> None:
        raise StoreUnavailable("disk I/O error")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings without the worker: intake alone decides every answer here."""
    return make_settings(tmp_path, run_worker=False)


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({}, "missing_signature", id="missing"),
        pytest.param({"X-Signature": "not-hex"}, "malformed_signature", id="malformed"),
        pytest.param({"X-Signature": "A" * 64}, "malformed_signature", id="uppercase"),
        pytest.param({"X-Signature": sign("wrong", b"{}")}, "bad_signature", id="wrong"),
    ],
)
def test_unverified_posts_get_401_and_nothing_is_stored(
    settings: Settings, headers: dict[str, str], reason: str
) -> None:
    """Missing, malformed or wrong signatures are answered 401 with a small JSON error."""
    body = encode(delivery())
    with running(settings) as server:
        response = server.client.post("/webhooks/mta", content=body, headers=headers)
        stored = count_events(server)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": reason}
    assert len(response.content) < 100
    assert stored == 0


def test_either_secret_verifies_and_its_index_is_stored(settings: Settings) -> None:
    """During a rotation both secrets verify; events.secret_index records which one did."""
    with running(settings) as server:
        new = server.post(delivery(message_id=1), secret=SECRET)
        old = server.post(delivery(message_id=2), secret=OLD_SECRET)
        rows = server.query("SELECT message_id, secret_index FROM events ORDER BY message_id")
    assert (new.status_code, old.status_code) == (200, 200)
    assert rows == [("1", 0), ("2", 1)]


def test_forged_post_is_counted_in_metrics(settings: Settings) -> None:
    """/metrics shows receiver_webhooks_rejected_total{reason="bad_signature"} after a forgery."""
    with running(settings) as server:
        forged = server.post(delivery(), secret="not-our-secret")
        metrics = server.client.get("/metrics")
    assert forged.status_code == 401
    assert metrics.status_code == 200
    assert (
        'receiver_webhooks_rejected_total{account="default",reason="bad_signature"} 1.0'
        in metrics.text
    )


# --- methods and sizes -------------------------------------------------------------------------


def test_get_on_the_webhook_path_is_405(settings: Settings) -> None:
    """GET /webhooks/mta is 405 with Allow: POST."""
    with running(settings) as server:
        response = server.client.get("/webhooks/mta")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": "method_not_allowed"}


def padded(size: int) -> bytes:
    """A valid delivery-status body of exactly ``size`` bytes."""
    base = encode(delivery(message_id=size, pad=""))
    return encode(delivery(message_id=size, pad="x" * (size - len(base))))


def test_declared_length_over_the_limit_is_413_and_nothing_stored(tmp_path: Path) -> None:
    """A signed body one byte over max_body_bytes is 413 and not stored; one at the limit is 200."""
    with running(make_settings(tmp_path, max_body_bytes=LIMIT)) as server:
        over = server.post(padded(LIMIT + 1))
        rows_after_over = count_events(server)
        at = server.post(padded(LIMIT))
        big = server.post(padded(LIMIT * 50))
        rows = count_events(server)
    assert len(padded(LIMIT)) == LIMIT
    assert (over.status_code, over.json()) == (413, {"error": "too_large"})
    assert over.headers["connection"] == "close"
    assert rows_after_over == 0
    assert at.status_code == 200
    assert big.status_code == 413
    assert rows == 1


def test_chunked_body_past_the_limit_is_413_and_the_connection_closes(tmp_path: Path) -> None:
    """A chunked body (no Content-Length) streaming past the limit gets 413 and a close early."""
    chunk = b"x" * 256
    budget = 100 * LIMIT  # we would send this much if the server never stopped us
    with running(make_settings(tmp_path, max_body_bytes=LIMIT)) as server:
        with socket.create_connection(address(server), timeout=5) as sock:
            sock.sendall(
                b"POST /webhooks/mta HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Transfer-Encoding: chunked\r\nX-Signature: " + b"0" * 64 + b"\r\n\r\n"
            )
            sent = 0
            answered = False
            deadline = time.monotonic() + 5
            while sent < budget and time.monotonic() < deadline:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server closed on us: stop sending, read what it said
                sent += len(chunk)
                readable, _, _ = select.select([sock], [], [], 0.005)
                if readable:
                    answered = True
                    break
            data, _ = read_until_closed(sock, within=3)
        stored = count_events(server)
    assert answered or data, "no answer while streaming"
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]
    assert b'{"error": "too_large"}' in data
    assert sent < budget // 4, f"kept reading {sent} bytes past a {LIMIT}-byte limit"
    assert stored == 0


# --- hostile bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), HOSTILE)
def test_signed_hostile_body_is_200_and_quarantined_once(
    settings: Settings, body: bytes, reason: str
) -> None:
    """An authentic unreadable body is 200 quarantined (MTA must not retry the same bytes),
    kept once with its reason, and counted."""
    with running(settings) as server:
        first = server.post(body)
        again = server.post(body)
        rows = server.query(
            "SELECT id, state, last_error, type, duplicates FROM events WHERE body = ?", (body,)
        )
        total = count_events(server)
        metrics = server.client.get("/metrics").text
    assert first.status_code == again.status_code == 200
    assert first.headers["x-receiver-outcome"] == again.headers["x-receiver-outcome"]
    assert first.headers["x-receiver-outcome"] == "quarantined"
    event_id = int(first.headers["x-receiver-event-id"])
    assert rows == [(event_id, "quarantined", reason, "unknown", 1)]
    assert int(again.headers["x-receiver-event-id"]) == event_id
    assert total == 1
    assert f'reason="{reason}"' in metrics


def test_quarantined_body_is_listed_by_the_cli(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 200-quarantined body shows in ``mta-receiver events list --state quarantined``."""
    with running(settings) as server:
        answer = server.post(b"{not json")
    monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("RECEIVER_DATABASE_URL", settings.database_url)
    status, out = cli(capsys, "events", "list", "--state", "quarantined", "--json")
    assert status == 0
    assert [row["id"] for row in json.loads(out)] == [int(answer.headers["x-receiver-event-id"])]


def test_unsigned_hostile_bodies_are_401_and_not_stored(settings: Settings) -> None:
    """Without a signature, unreadable bodies are refused as unauthentic, before parsing."""
    with running(settings) as server:
        answers = [
            server.client.post("/webhooks/mta", content=param.values[0]).status_code
            for param in HOSTILE
        ]
        stored = count_events(server)
    assert answers == [401] * len(HOSTILE)
    assert stored == 0


TOKENS = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\\u", b"\\ud800", b"null", b"-0"]
TOKENS += [b"1e999", b"NaN", b"true", b"\x00", b"\xff", b"\xc3", b" ", b'{"data":', b"\r\n"]
VALUES: list[Any] = [None, True, 0, -1, 4, 42, 1.5, "", "4", "x" * 50, [], {}, [1, {"a": []}]]
VALUES += ["\ud800", {"k": None}, 2**62]  # ints stay below SQLite's 2**63: see the xfail below
KEYS = ["type", "event", "messageId", "status", "replyId", "fromNumber", "tags", "data", "message"]
KEYS += ["externalId", "optInType", "destinationNumber", "senderName", "number"]


def fuzz_body(rng: random.Random) -> bytes:
    """One random body: raw bytes, a mutated valid payload, random fields, or deep nesting."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        body = bytearray(encode(delivery(status=rng.randrange(1, 14))))
        for _ in range(rng.randrange(1, 5)):
            at = rng.randrange(len(body) + 1)
            action = rng.randrange(4)
            if action == 0 and body:
                body[min(at, len(body) - 1)] = rng.randrange(256)
            elif action == 1:
                body[at:at] = rng.choice(TOKENS)
            elif action == 2:
                del body[at : at + rng.randrange(1, 10)]
            else:
                body = body[:at]
        return bytes(body)
    if kind == 2:
        fields = {rng.choice(KEYS): rng.choice(VALUES) for _ in range(rng.randrange(0, 8))}
        if rng.random() < 0.3:
            fields = {"data": fields}
        return json.dumps(fields).encode()
    if kind == 3:
        depth = rng.randrange(1, 3000)
        return rng.choice([b"[", b'{"a":', b'{"data":']) * depth + b"1" + b"]" * rng.randrange(3)
    return rng.choice(TOKENS) * rng.randrange(1, 50)


def test_fuzzed_bodies_never_cause_a_server_error(settings: Settings) -> None:
    """300 seeded random bodies, signed and not: signed → 200/400, unsigned → 401, never 5xx."""
    rng = random.Random(20_240_601)
    unexpected: list[tuple[bool, int, bytes]] = []
    events = ["delivery-status", "message-reply", "bogus", None]
    with running(settings) as server:
        for n in range(300):
            body = fuzz_body(rng)
            signed = n % 2 == 0
            headers = {"X-Signature": sign(SECRET, body)} if signed else {}
            if not signed and rng.random() < 0.5:
                headers["X-Signature"] = rng.choice(["", "0" * 64, "zz", sign(SECRET, b"x")])
            event = rng.choice(events)
            params = {"event": event} if event else None
            response = server.client.post(
                "/webhooks/mta", content=body, headers=headers, params=params
            )
            allowed = {200, 400} if signed else {401}
            if response.status_code not in allowed:
                unexpected.append((signed, response.status_code, body[:80]))
        health = server.client.get("/healthz")
    assert unexpected == []
    assert health.status_code == 200


@pytest.mark.parametrize("status", [2**64, str(10**20)], ids=["number", "string"])
def test_oversized_integer_status_is_not_a_server_error(settings: Settings, status: Any) -> None:
    """An authentic body with a status too large for SQLite is answered below 500."""
    with running(settings) as server:
        response = server.post(delivery(status=status))
        health = server.client.get("/healthz")
    assert health.status_code == 200
    assert response.status_code < 500


# --- what the body means --------------------------------------------------------------------


def test_event_query_decides_the_type_over_the_body(settings: Settings) -> None:
    """?event=message-reply stores a delivery-status-looking body as a message-reply."""
    with running(settings) as server:
        hinted = server.post(delivery(message_id=1), event="message-reply")
        plain = server.post(delivery(message_id=2))
        rows = server.query("SELECT message_id, type FROM events ORDER BY message_id")
    assert (hinted.status_code, plain.status_code) == (200, 200)
    assert rows == [("1", "message-reply"), ("2", "delivery-status")]


def test_data_wrapped_body_is_accepted(settings: Settings) -> None:
    """A payload wrapped in a top-level `data` object is accepted and read from inside."""
    with running(settings) as server:
        response = server.post({"data": delivery(message_id=55, status=4)})
        rows = server.query("SELECT type, name, message_id, status FROM events")
    assert (response.status_code, response.headers["x-receiver-outcome"]) == (200, "accepted")
    assert rows == [("delivery-status", "delivery-status.delivered", "55", 4)]


# --- the read deadline -------------------------------------------------------------------------


@pytest.fixture
def quick(tmp_path: Path) -> Settings:
    """Settings with a 0.5 s read deadline and no worker."""
    return make_settings(tmp_path, read_timeout=0.5, run_worker=False)


def test_partial_headers_get_408_within_the_deadline(quick: Settings) -> None:
    """A client that sends half its headers and stalls gets a 408 and a close, in bounded time."""
    with running(quick) as server, socket.create_connection(address(server)) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /webhooks/mta HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        data, closed = read_until_closed(sock, within=3)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.4 <= closed - started < 3


def test_stalled_body_gets_408_within_the_deadline(quick: Settings) -> None:
    """A client that sends full headers but only part of the body gets a 408 and a close."""
    body = encode(delivery())
    with running(quick) as server:
        with socket.create_connection(address(server)) as sock:
            started = time.monotonic()
            sock.sendall(request_bytes(body)[: -len(body) // 2])
            data, closed = read_until_closed(sock, within=3)
        stored = count_events(server)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.4 <= closed - started < 3
    assert stored == 0


def test_prompt_request_is_answered_not_timed_out(quick: Settings) -> None:
    """A whole request sent at once is answered by the app, and no 408 follows on keep-alive."""
    body = encode(delivery())
    with running(quick) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(request_bytes(body))
        answer = read_response(sock)
        sock.settimeout(2 * quick.read_timeout)  # bounded wait: nothing may arrive
        try:
            extra: bytes | None = sock.recv(65536)
        except TimeoutError:
            extra = None
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b"x-receiver-outcome: accepted" in answer
    assert extra is None, f"unsolicited bytes or close after the answer: {extra!r}"


def test_deadline_rearms_for_the_next_request_on_a_connection(quick: Settings) -> None:
    """After a complete request, a second one that stalls mid-headers is still cut off with 408."""
    body = encode(delivery())
    with running(quick) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(request_bytes(body))
        first = read_response(sock)
        started = time.monotonic()
        sock.sendall(b"POST /webhooks/mta HTTP/1.1\r\nHost: 12")
        data, closed = read_until_closed(sock, within=3)
    assert first.startswith(b"HTTP/1.1 200 "), first
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert closed - started < 3


def send_until_refused(sock: socket.socket, data: bytes, chunk: int = 8192) -> None:
    """Send ``data`` in pieces; stop quietly once the server has closed the connection."""
    for start in range(0, len(data), chunk):
        try:
            sock.sendall(data[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            return


@pytest.mark.parametrize("shape", ["many-headers", "one-long-value", "long-url"])
def test_headers_over_the_cap_get_431_and_a_close(settings: Settings, shape: str) -> None:
    """Request lines and headers past MAX_HEADER_BYTES, however shaped, are refused with
    431 before they are complete (httptools alone keeps every byte of them)."""
    over = 3 * MAX_HEADER_BYTES  # well past the cap, however it is counted
    head = {
        "many-headers": b"POST /webhooks/mta HTTP/1.1\r\n" + b"X-A: " + b"a" * 1000 + b"\r\n",
        "one-long-value": b"POST /webhooks/mta HTTP/1.1\r\nX-Big: ",
        "long-url": b"POST /webhooks/mta?event=",
    }[shape]
    filler = head[len(head) - 1007 :] if shape == "many-headers" else b"a"
    data = head + filler * (over // len(filler))
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        send_until_refused(sock, data)
        answer, _ = read_until_closed(sock, within=5)
        assert server.client.get("/healthz").status_code == 200
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert answer.endswith(b'{"error": "headers_too_large"}')


def test_large_headers_under_the_cap_are_served_request_after_request(
    settings: Settings,
) -> None:
    """Each request of a keep-alive connection gets the whole allowance: two requests
    with ~40 KiB of headers each are both answered."""
    body = encode(delivery())
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 1000) for n in range(40))
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        answers = []
        for _ in range(2):
            sock.sendall(request_bytes(body, headers=padding))
            answers.append(read_response(sock))
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2


def test_pipelined_requests_are_answered_in_order(settings: Settings) -> None:
    """A few pipelined webhooks, sent at once, are each stored and answered in order."""
    bodies = [encode(delivery(message_id=n)) for n in range(1, 6)]
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(b"".join(request_bytes(b) for b in bodies))
        answers = [read_response(sock) for _ in bodies]
        stored = count_events(server)
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 5
    assert stored == 5


def test_pipelined_flood_is_cut_off(settings: Settings) -> None:
    """A client pipelining hundreds of requests without reading answers loses its queue
    once MAX_PIPELINED wait: the request in hand is answered, then the connection
    closes, instead of a queue growing without bound."""
    flood = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        send_until_refused(sock, flood, chunk=len(flood))
        answers, _ = read_until_closed(sock, within=5)
        assert server.client.get("/healthz").status_code == 200
    assert 1 <= answers.count(b"HTTP/1.1 200 OK") <= MAX_PIPELINED + 1
    assert b" 400 " not in answers


def test_refusing_a_pipelined_flood_first_answers_the_webhook_in_hand(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A signed webhook, then 40 pipelined GETs in the same write: the webhook's answer
    is its own 200 (it is stored), not a refusal written ahead of it, and nothing
    fails in the server."""
    body = encode(delivery(message_id=4040))
    data = request_bytes(body) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 40
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(data)
        answers, _ = read_until_closed(sock, within=5)
        stored = count_events(server)
    assert answers.startswith(b"HTTP/1.1 200 OK"), answers[:200]
    assert b"x-receiver-outcome: accepted" in answers.split(b"\r\n\r\n", 1)[0]
    assert b" 400 " not in answers
    assert stored == 1
    assert "Exception in ASGI application" not in caplog.text


@pytest.mark.parametrize(
    ("padding", "body_size", "first_write"),
    [
        pytest.param(0, 150_000, 40, id="small-headers-big-body"),
        pytest.param(41_000, 30_000, 1448, id="big-headers-body"),
    ],
)
def test_headers_split_over_reads_with_a_body_are_served(
    settings: Settings, padding: int, body_size: int, first_write: int
) -> None:
    """Headers under the cap that arrive over several reads, the last one carrying a
    body: the body is not counted as header bytes (it was, and got a 431)."""
    payload = delivery(message_id=4141, note="n" * body_size)
    body = encode(payload)
    extra = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 990) for n in range(padding // 1000))
    data = request_bytes(body, headers=extra)
    with running(settings) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(data[:first_write])
        assert server.client.get("/healthz").status_code == 200  # the first part was read
        sock.sendall(data[first_write:])
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]


# --- health and readiness ----------------------------------------------------------------------


def test_healthz_is_200(settings: Settings) -> None:
    """/healthz answers 200 while the server runs."""
    with running(settings) as server:
        response = server.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_when_the_store_is_writable(settings: Settings) -> None:
    """/readyz answers 200 when a heartbeat can be written."""
    with running(settings) as server:
        response = server.client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_readyz_is_503_when_the_store_cannot_be_written(tmp_path: Path) -> None:
    """/readyz answers 503 when the store refuses the heartbeat write; /healthz stays 200."""
    settings = make_settings(tmp_path, run_worker=False)
    store = UnwritableHeartbeat(create_store(settings.database_url))
    with running(settings, Registry(), store) as server:
        ready = server.client.get("/readyz")
        health = server.client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "error": "StoreUnavailable"}
    assert health.status_code == 200


async def test_intake_counts_webhooks_waiting_for_their_commit(tmp_path: Path) -> None:
    """Webhooks waiting for their commit are counted (the worker gives way to them, and
    /metrics shows them); the count returns to 0 once they are answered, 503s included."""
    gate = asyncio.Event()

    class HeldStore:
        fail = False

        async def ingest(self, incoming: Incoming) -> IngestResult:
            await gate.wait()
            if self.fail:
                raise StoreUnavailable("disk full")
            return IngestResult(1, False)

    store = HeldStore()
    metrics = Metrics()
    intake = Intake(make_settings(tmp_path), store, metrics)  # type: ignore[arg-type]

    async def post(message_id: int) -> int:
        body = json.dumps(delivery(message_id=message_id)).encode()
        headers = [(b"x-signature", sign(SECRET, body).encode())]
        scope = {"type": "http", "method": "POST", "path": "/webhooks/mta",
                 "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1)}  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await intake(scope, receive, send)
        return int(sent[0]["status"])

    posts = [asyncio.create_task(post(n)) for n in range(3)]
    await eventually(lambda: intake.waiting == 3)
    assert metrics.registry.get_sample_value("receiver_webhooks_waiting") == 3
    gate.set()
    assert await asyncio.gather(*posts) == [200, 200, 200]
    assert intake.waiting == 0
    assert intake.crowd() == (1 + 2 + 3) / 3, "each webhook found 0, 1 and 2 waiting"
    assert intake.crowd() == 0.0, "none arrived since"

    store.fail = True
    assert await post(4) == 503
    assert intake.waiting == 0


@pytest.mark.parametrize("error", [StoreUnavailable("disk full"), RuntimeError("driver state")])
async def test_every_store_failure_is_503_with_retry_after(
    tmp_path: Path, error: Exception
) -> None:
    """A store failure, translated or not (a driver error the store did not know), is a
    503 with Retry-After, never a 500."""

    class FailingStore:
        async def ingest(self, incoming: Incoming) -> IngestResult:
            raise error

    intake = Intake(make_settings(tmp_path), FailingStore(), Metrics())  # type: ignore[arg-type]
    body = json.dumps(delivery()).encode()
    headers = [(b"x-signature", sign(SECRET, body).encode())]
    scope = {"type": "http", "method": "POST", "path": "/webhooks/mta",
             "query_string": b"", "headers": headers, "client": None}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await intake(scope, receive, send)
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]
