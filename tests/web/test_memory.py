"""Memory of a real ``serve`` process under hostile framing stays bounded per connection."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Process, process_env, start_process
from .test_hostile import chunked, connect

pytestmark = pytest.mark.slow

MB = 1024 * 1024


def rss(process: Process) -> int:
    """Resident set size of the receiver process, in bytes (/proc/PID/status VmRSS)."""
    status = Path(f"/proc/{process.proc.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


@pytest.fixture
def server(tmp_path: Path, processes: list[Process]) -> Process:
    """A receiver process (SQLite, defaults, no worker)."""
    processes.append(
        process := start_process(tmp_path, process_env(tmp_path, RECEIVER_RUN_WORKER="false"))
    )
    return process


def stream_trailers(process: Process, seconds: float, limit: int) -> int:
    """For ``seconds``, one connection at a time streams trailer fields without end
    (reconnecting whenever it is refused); the peak RSS seen. Stops early once the
    process has grown by ``limit`` (the test has failed; the machine is shared)."""
    before = peak = rss(process)
    deadline = time.monotonic() + seconds
    flood = b"a:b\r\n" * 20_000
    while time.monotonic() < deadline and peak - before < limit:
        with connect(process) as sock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(chunked(b"a")[:-2])
            while time.monotonic() < deadline and peak - before < limit:
                sock.sendall(flood)
                peak = max(peak, rss(process))
    return max(peak, rss(process))


def peak_rss(process: Process, seconds: float) -> int:
    """The highest RSS sampled every 50 ms over ``seconds`` (the server reading what
    was sent has no end to poll for: its growth is what is measured)."""
    peak = rss(process)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        peak = max(peak, rss(process))
    return peak


def test_streaming_trailers_for_seconds_keeps_rss_growth_under_100_mb(server: Process) -> None:
    """One connection streaming trailers for 4 s grows the process by less than 100 MB."""
    before = rss(server)
    peak = stream_trailers(server, seconds=4, limit=100 * MB)
    assert peak - before < 100 * MB, f"+{(peak - before) / MB:.0f} MB"
    assert server.healthy()


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    """Sockets a test keeps open; closed at its end."""
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


@pytest.mark.parametrize("field", [b"X-Pad-%d: " + b"p" * 1000 + b"\r\n", b"a%d:b\r\n"])
def test_hundreds_of_held_header_blocks_keep_rss_growth_under_150_mb(
    server: Process, held: list[socket.socket], field: bytes
) -> None:
    """300 connections each send ~59 KiB of header fields (large ones, or tiny ones past
    the field cap) and never finish: the process grows by less than 150 MB."""
    before = rss(server)
    head = b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    block = b""
    n = 0
    while len(block) < 59 * 1024:
        block += field.replace(b"%d", b"%d" % n)
        n += 1
    for _ in range(300):
        sock = connect(server)
        held.append(sock)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + block)
    grown = peak_rss(server, seconds=1) - before
    assert grown < 150 * MB, f"+{grown / MB:.0f} MB"
    assert server.healthy()
