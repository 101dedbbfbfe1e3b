"""Per-account webhook paths over real HTTP: each verifies with its own secrets only."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.accounts import Account
from receiver.logs import JsonFormatter
from receiver.secret import Secret
from receiver.settings import Settings
from receiver.store import Incoming, IngestResult, create_store

from ..conftest import SECRET, Server, delivery, encode, make_settings, running, signed_headers
from .test_intake import address, read_until_closed

SECRET_A = "1" * 64
SECRET_B = "2" * 64
BRANDS = (Account("brand-a", (Secret(SECRET_A),)), Account("brand-b", (Secret(SECRET_B),)))


class RecordingStore:
    """A real store that also keeps every `Incoming` intake hands it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.incoming: list[Incoming] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def ingest(self, incoming: Incoming) -> IngestResult:
        self.incoming.append(incoming)
        result: IngestResult = await self._inner.ingest(incoming)
        return result


def serve(settings: Settings) -> Any:
    """``running`` with a recording SQLite store; yields (server, store)."""
    store = RecordingStore(create_store(settings.database_url))
    return running(settings, store=store), store


def post(server: Server, path: str, payload: Any, secret: str) -> httpx.Response:
    """POST ``payload`` signed with ``secret`` to ``path``."""
    body = encode(payload)
    return server.client.post(path, content=body, headers=signed_headers(body, secret))


def keys(server: Server) -> list[str]:
    """The stored events' dedup keys, in order."""
    return [row[0] for row in server.query("SELECT dedup_key FROM events ORDER BY id")]


@pytest.fixture
def two_brands(tmp_path: Path) -> Iterator[tuple[Server, RecordingStore]]:
    """The environment's account (SECRET) and brand-a, brand-b from a file, served."""
    context, store = serve(make_settings(tmp_path, run_worker=False, file_accounts=BRANDS))
    with context as server:
        yield server, store


def test_each_account_is_verified_and_credited_at_its_own_path(
    two_brands: tuple[Server, RecordingStore],
) -> None:
    """The same messageId in three accounts: three accepted events, each of its account."""
    server, store = two_brands
    answers = [
        post(server, "/webhooks/mta", delivery(message_id=7), SECRET),
        post(server, "/webhooks/mta/brand-a", delivery(message_id=7), SECRET_A),
        post(server, "/webhooks/mta/brand-b", delivery(message_id=7), SECRET_B),
        post(server, "/webhooks/mta/brand-b", delivery(message_id=7), SECRET_B),
    ]
    outcomes = [(a.status_code, a.headers["x-receiver-outcome"]) for a in answers]
    assert outcomes == [(200, "accepted")] * 3 + [(200, "duplicate")]
    assert [i.account for i in store.incoming] == ["default", "brand-a", "brand-b", "brand-b"]
    default, brand_a, brand_b = keys(server)
    assert brand_a == f"brand-a/{default}"
    assert brand_b == f"brand-b/{default}"
    assert "/" not in default  # the default account's keys are those stored before accounts


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        pytest.param("/webhooks/mta/brand-b", SECRET_A, id="a-to-b"),
        pytest.param("/webhooks/mta/brand-a", SECRET_B, id="b-to-a"),
        pytest.param("/webhooks/mta/brand-a", SECRET, id="default-to-a"),
        pytest.param("/webhooks/mta", SECRET_A, id="a-to-default"),
    ],
)
def test_a_body_signed_for_another_account_is_401(
    two_brands: tuple[Server, RecordingStore], path: str, secret: str
) -> None:
    """Each path tries its own account's secrets only: another's is a bad signature."""
    server, store = two_brands
    answer = post(server, path, delivery(), secret)
    assert (answer.status_code, answer.json()) == (401, {"error": "bad_signature"})
    assert store.incoming == []
    assert keys(server) == []


def test_intake_warnings_name_the_account_of_the_path(
    two_brands: tuple[Server, RecordingStore], caplog: pytest.LogCaptureFixture
) -> None:
    """A bad signature and a quarantined body are logged with the account whose path
    they came to: which registration has the wrong secret, whose body was unreadable."""
    server, _ = two_brands
    with caplog.at_level(logging.WARNING, "receiver.intake"):
        post(server, "/webhooks/mta/brand-b", delivery(), SECRET_A)
        body = b"not json"
        server.client.post(
            "/webhooks/mta/brand-a", content=body, headers=signed_headers(body, SECRET_A)
        )
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert [(line["message"], line.get("account")) for line in lines] == [
        ("webhook rejected: bad_signature", "brand-b"),
        ("authentic webhook quarantined: invalid_json", "brand-a"),
    ]


def raw_request(
    server: Server, target: bytes, *, method: bytes = b"POST", length: int = 0
) -> bytes:
    """Send a request's head only (declaring ``length`` body bytes it never sends); the
    whole answer, read until the server closes."""
    with socket.create_connection(address(server), timeout=5) as sock:
        sock.sendall(
            method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: %d\r\nX-Signature: %s\r\n\r\n" % (length, b"0" * 64)
        )
        data, _ = read_until_closed(sock, within=3)
    return data


@pytest.mark.parametrize(
    "target",
    [
        b"/webhooks/mta/brand-c",
        b"/webhooks/mta/",
        b"/webhooks/mta/brand-a/",
        b"/webhooks/mta/brand-a/x",
        b"/webhooks/mta/BRAND-A",
        b"/webhooks/mta/..",
        b"/webhooks/mta/../mta",
        b"/webhooks/mta/default",  # the default account has one path: /webhooks/mta
        b"/webhooks/mta/" + b"a" * 41,
        b"/webhooks/mta/brand-a%2F",
    ],
)
def test_paths_of_no_account_are_404_and_closed(
    two_brands: tuple[Server, RecordingStore], target: bytes
) -> None:
    """Unknown names, a trailing slash, '..', upper case, too long: 404, connection closed."""
    server, store = two_brands
    data = raw_request(server, target)
    assert data.startswith(b"HTTP/1.1 404 "), data[:100]
    assert data.endswith(b'{"error": "unknown_account"}')
    assert store.incoming == []


def test_get_of_an_unknown_account_is_404_not_405(
    two_brands: tuple[Server, RecordingStore],
) -> None:
    """No account at the path is decided before the method: nothing there to allow."""
    server, _ = two_brands
    assert raw_request(server, b"/webhooks/mta/brand-c", method=b"GET").startswith(b"HTTP/1.1 404 ")
    assert server.client.get("/webhooks/mta/brand-a").status_code == 405


def test_unknown_account_is_answered_without_waiting_for_the_body(tmp_path: Path) -> None:
    """A declared body that never comes: 404 and a close at once, not at the read deadline."""
    settings = make_settings(tmp_path, run_worker=False, file_accounts=BRANDS, read_timeout=10.0)
    with running(settings) as server:
        started = time.monotonic()
        with socket.create_connection(address(server), timeout=5) as sock:
            sock.sendall(
                b"POST /webhooks/mta/brand-c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: 5000\r\n\r\n" + b"{" * 100  # 100 of the 5000 bytes
            )
            data, closed = read_until_closed(sock, within=3)
    assert data.startswith(b"HTTP/1.1 404 "), data[:100]
    assert b"connection: close" in data.lower()
    assert closed - started < 2, "waited for the body of a request it refuses"


def test_only_a_file_leaves_the_default_path_404(tmp_path: Path) -> None:
    """Without environment secrets there is no default account: /webhooks/mta is 404
    at once (body unread), and the file's accounts are served."""
    settings = make_settings(
        tmp_path, run_worker=False, webhook_secrets=(), file_accounts=BRANDS, read_timeout=10.0
    )
    assert list(settings.accounts) == ["brand-a", "brand-b"]
    with running(settings) as server:
        started = time.monotonic()
        data = raw_request(server, b"/webhooks/mta", length=5000)
        waited = time.monotonic() - started
        signed = post(server, "/webhooks/mta/brand-a", delivery(), SECRET_A)
        stored = keys(server)
    assert data.startswith(b"HTTP/1.1 404 "), data[:100]
    assert waited < 2
    assert signed.status_code == 200
    assert [key.split("/")[0] for key in stored] == ["brand-a"]


def test_environment_only_serves_the_default_path_alone(tmp_path: Path) -> None:
    """No file: /webhooks/mta as before, unprefixed keys; no path below it exists."""
    with running(make_settings(tmp_path, run_worker=False)) as server:
        accepted = post(server, "/webhooks/mta", delivery(), SECRET)
        below = raw_request(server, b"/webhooks/mta/default")
        stored = keys(server)
    assert accepted.headers["x-receiver-outcome"] == "accepted"
    assert below.startswith(b"HTTP/1.1 404 ")
    assert len(stored) == 1
    assert "/" not in stored[0]


def test_the_allow_list_answers_before_the_account_lookup(tmp_path: Path) -> None:
    """A source outside RECEIVER_WEBHOOK_ALLOW_NETWORKS gets 403 on any name: it cannot
    tell configured accounts from unknown ones."""
    settings = make_settings(
        tmp_path, run_worker=False, file_accounts=BRANDS, webhook_allow_networks=("10.0.0.0/8",)
    )
    with running(settings) as server:
        known = post(server, "/webhooks/mta/brand-a", delivery(), SECRET_A)
        unknown = post(server, "/webhooks/mta/brand-c", delivery(), SECRET_A)
    assert (known.status_code, unknown.status_code) == (403, 403)
    assert unknown.json() == {"error": "source_not_allowed"}


def test_unknown_accounts_are_counted_as_rejections(
    two_brands: tuple[Server, RecordingStore],
) -> None:
    """/metrics counts the 404s under their reason, like every other refusal."""
    server, _ = two_brands
    raw_request(server, b"/webhooks/mta/brand-c")
    metrics = server.client.get("/metrics").text
    assert 'receiver_webhooks_rejected_total{account="",reason="unknown_account"} 1.0' in metrics
    assert "brand-c" not in metrics  # no series per name a request made up
