"""Hostile framing against a real ``serve`` process: trailers, header caps, bad chunking."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver import sign
from receiver.web.framing import MAX_HEADER_BYTES, MAX_HEADER_FIELDS

from ..conftest import SECRET, Process, delivery, encode, process_env, start_process
from .test_intake import read_response, read_until_closed, request_bytes, send_until_refused

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """One receiver process (SQLite, defaults, no worker) shared by this module's tests."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    process = start_process(tmp_path, process_env(tmp_path, RECEIVER_RUN_WORKER="false"))
    yield process
    process.kill()


def connect(process: Process) -> socket.socket:
    host, port = process.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def chunked(body: bytes, *, trailers: bytes = b"", headers: bytes = b"") -> bytes:
    """A webhook POST with ``body`` in one chunk, then ``trailers`` after the last chunk."""
    return (
        b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + headers
        + b"\r\n%x\r\n%s\r\n0\r\n" % (len(body), body)
        + trailers
        + b"\r\n"
    )


def stored(process: Process, message_id: int) -> int:
    db = Path(process.log).parent / "receiver.db"
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM events WHERE message_id = ?", (message_id,)
            ).fetchone()[0]
        )


def status(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def test_signature_sent_only_as_a_trailer_does_not_verify(server: Process) -> None:
    """Trailers never reach the signature check: a signature sent only as a trailer is
    a missing signature (401), and nothing is stored."""
    body = encode(delivery(message_id=1101))
    trailer = b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n"
    with connect(server) as sock:
        sock.sendall(chunked(body, trailers=trailer))
        answer = read_response(sock)
    assert status(answer) == b"HTTP/1.1 401 Unauthorized", answer
    assert b"missing_signature" in answer
    assert stored(server, 1101) == 0


def test_signed_chunked_webhook_with_harmless_trailers_is_accepted(server: Process) -> None:
    """A chunked webhook signed in its headers, with trailers, is stored and 200."""
    body = encode(delivery(message_id=1102))
    headers = b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n"
    with connect(server) as sock:
        sock.sendall(chunked(body, headers=headers, trailers=b"X-Checksum: abc\r\n"))
        answer = read_response(sock)
    assert status(answer) == b"HTTP/1.1 200 OK", answer
    assert stored(server, 1102) == 1


def test_streamed_trailers_get_431_and_a_close(server: Process) -> None:
    """Trailer fields streamed without end are counted against the header cap: 431 and
    a close, within a second, and the server still serves others."""
    body = encode(delivery(message_id=1103))
    start = chunked(body)[:-2]  # no blank line: the trailer section stays open
    with connect(server) as sock:
        sock.sendall(start)
        started = time.monotonic()
        send_until_refused(sock, b"a:b\r\n" * 40_000)
        answer, closed = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 431 Request Header Fields Too Large", answer
    assert closed - started < 2
    assert server.healthy()


def test_one_trailer_field_that_never_ends_gets_431(server: Process) -> None:
    """A single trailer field streamed without its line end is refused too (httptools
    would keep all of it)."""
    start = chunked(b"{}")[:-2] + b"X-Long: "
    with connect(server) as sock:
        sock.sendall(start)
        send_until_refused(sock, b"a" * (4 * MAX_HEADER_BYTES), chunk=4096)
        answer, _ = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 431 Request Header Fields Too Large", answer


@pytest.mark.parametrize("writes", [1, 50])
def test_header_block_over_64_kib_is_431_however_it_arrives(server: Process, writes: int) -> None:
    """A 190,000-byte header block is refused, whether it comes in one write or many."""
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 2000) for n in range(95))
    data = request_bytes(encode(delivery()), headers=padding)
    assert len(data) > 190_000
    with connect(server) as sock:
        send_until_refused(sock, data, chunk=len(data) // writes + 1)
        answer, _ = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 431 Request Header Fields Too Large", answer


def test_too_many_small_header_fields_get_431(server: Process) -> None:
    """More than MAX_HEADER_FIELDS fields, however small, are refused; exactly the cap
    is served."""
    body = encode(delivery(message_id=1104))
    base = request_bytes(body).count(b"\r\n") - 2  # fields request_bytes sends itself

    def padding(fields: int) -> bytes:
        return b"".join(b"a%d:b\r\n" % n for n in range(fields))

    with connect(server) as sock:
        sock.sendall(request_bytes(body, headers=padding(MAX_HEADER_FIELDS - base)))
        assert status(read_response(sock)) == b"HTTP/1.1 200 OK"
    with connect(server) as sock:
        send_until_refused(sock, request_bytes(body, headers=padding(MAX_HEADER_FIELDS)))
        answer, _ = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 431 Request Header Fields Too Large", answer


def test_invalid_chunk_size_is_400_at_once(server: Process) -> None:
    """A bad chunk size after complete headers is answered 400 and closed at once, not
    held until the read deadline."""
    head = b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head)
        time.sleep(0.05)  # the app is reading the body when the bad size arrives
        sock.sendall(b"zz\r\n")
        sent = time.monotonic()
        answer, closed = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 400 Bad Request", answer
    assert closed - sent < 1


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        (b"gzip, chunked", b"HTTP/1.1 501 Not Implemented"),
        (b"chunked, chunked", b"HTTP/1.1 400 Bad Request"),
    ],
)
def test_transfer_codings_other_than_chunked_are_refused(
    server: Process, coding: bytes, expected: bytes
) -> None:
    """Only plain ``chunked`` is read: another coding is 501, a doubled one 400; both
    close, and nothing is stored."""
    body = encode(delivery(message_id=1105))
    data = chunked(body, headers=b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n")
    data = data.replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding: " + coding)
    with connect(server) as sock:
        sock.sendall(data)
        answer, _ = read_until_closed(sock, within=5)
    assert status(answer) == expected, answer
    assert stored(server, 1105) == 0


def test_refusal_waits_for_the_webhook_answer_owed(server: Process) -> None:
    """A signed webhook and, in the same write, a request with a bad coding: the
    webhook gets its own 200 (and is stored), then the connection closes."""
    body = encode(delivery(message_id=1106))
    bad = chunked(b"{}").replace(b"chunked", b"gzip, chunked", 1)
    with connect(server) as sock:
        sock.sendall(request_bytes(body) + bad)
        answer, _ = read_until_closed(sock, within=5)
    assert status(answer) == b"HTTP/1.1 200 OK", answer
    assert answer.count(b"HTTP/1.1 ") == 1
    assert stored(server, 1106) == 1


def test_several_signature_headers_are_malformed(server: Process) -> None:
    """Two X-Signature headers (a right one and a wrong one) are 401 malformed_signature."""
    body = encode(delivery(message_id=1107))
    wrong = b"X-Signature: " + sign("another-secret-of-enough-length", body).encode() + b"\r\n"
    with connect(server) as sock:
        sock.sendall(request_bytes(body, headers=wrong))
        answer = read_response(sock)
    assert status(answer) == b"HTTP/1.1 401 Unauthorized", answer
    assert b"malformed_signature" in answer
    assert stored(server, 1107) == 0


def test_trailer_cannot_bypass_the_allow_list(tmp_path: Path, processes: list[Process]) -> None:
    """Behind a trusted proxy, a trailer X-Forwarded-For from an allowed network does
    not turn the 403 into a 200."""
    env = process_env(
        tmp_path,
        RECEIVER_RUN_WORKER="false",
        RECEIVER_WEBHOOK_ALLOW_NETWORKS="10.0.0.0/8",
        RECEIVER_FORWARDED_ALLOW_IPS="127.0.0.1",
    )
    processes.append(process := start_process(tmp_path, env))
    body = encode(delivery(message_id=1108))
    headers = b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n"
    with connect(process) as sock:
        sock.sendall(chunked(body, headers=headers, trailers=b"X-Forwarded-For: 10.1.2.3\r\n"))
        answer = read_response(sock)
    assert status(answer) == b"HTTP/1.1 403 Forbidden", answer
    with connect(process) as sock:  # the header itself still counts (the proxy's)
        sock.sendall(chunked(body, headers=headers + b"X-Forwarded-For: 10.1.2.3\r\n"))
        assert status(read_response(sock)) == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "tail",
    [
        b"POST /webhooks/mta HTTP/1.1\r\nHo",  # next request's headers never complete
        b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",  # its body
    ],
    ids=["headers", "body"],
)
def test_read_deadline_waits_for_the_webhook_answer_owed(
    tmp_path: Path, processes: list[Process], tail: bytes
) -> None:
    """A pipelined request that misses its read deadline while the webhook before it
    still waits for the database: no 408 overtakes the webhook's 200, which goes out
    alone once it is stored, then the connection closes."""
    read_timeout = 1.0
    env = process_env(tmp_path, RECEIVER_RUN_WORKER="false", RECEIVER_READ_TIMEOUT="1")
    processes.append(process := start_process(tmp_path, env))
    body = encode(delivery(message_id=1109))
    lock = sqlite3.connect(tmp_path / "receiver.db", isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the webhook's commit waits for this lock
        with connect(process) as sock:
            sock.sendall(request_bytes(body) + tail)
            sock.settimeout(3 * read_timeout)  # past the deadline and its sweep
            with pytest.raises(TimeoutError):  # bounded wait: nothing may arrive yet
                sock.recv(65536)
            lock.execute("COMMIT")
            answer, _ = read_until_closed(sock, within=5)
    finally:
        lock.close()
    assert status(answer) == b"HTTP/1.1 200 OK", answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert stored(process, 1109) == 1


H2C = (  # what curl --http2 adds on http://
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
)


@pytest.mark.parametrize("shape", ["one-write", "body-later", "chunked"])
def test_webhook_asking_an_h2c_upgrade_is_answered_as_http_1_1(server: Process, shape: str) -> None:
    """A signed webhook with ``Upgrade: h2c`` (as ``curl --http2`` sends on http://) is
    answered 200 over HTTP/1.1 and stored, its body read whole however it arrives; the
    connection then serves the next request as usual."""
    message_id = {"one-write": 1110, "body-later": 1111, "chunked": 1112}[shape]
    body = encode(delivery(message_id=message_id))
    signature = b"X-Signature: " + sign(SECRET, body).encode() + b"\r\n"
    if shape == "chunked":
        data = chunked(body, headers=signature + H2C)
    else:
        data = request_bytes(body, headers=H2C)
    split = data.index(b"\r\n\r\n") + 4 if shape == "body-later" else len(data)
    with connect(server) as sock:
        sock.sendall(data[:split])
        if split < len(data):
            time.sleep(0.05)  # the headers are parsed before the body arrives
            sock.sendall(data[split:])
        answer = read_response(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        after = read_response(sock)
    assert status(answer) == b"HTTP/1.1 200 OK", answer
    assert stored(server, message_id) == 1
    assert status(after) == b"HTTP/1.1 200 OK", after
