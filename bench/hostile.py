"""Hostile-input benchmark: RSS growth and probe latency of one receiver under attack.

Starts one receiver process (SQLite in a temporary directory, defaults otherwise) and,
one scenario after the other:

- trailer stream: one connection at a time streams chunked trailer fields without end
  (reconnecting whenever it is refused);
- header bomb, tiny fields: N connections each send ~59 KiB of ``a:b`` header fields and
  never finish (Content-Length: 100, no body);
- header bomb, 1 KB fields: the same bytes in 1,000-byte fields;
- idle connections: M connections opened and left silent.

During each, a probe sends a normal signed webhook on a fresh connection every 200 ms and
times its whole answer. Prints, per scenario: RSS before, the peak growth during it and
the growth left once its connections closed, and the probe latencies (p50, max) and
statuses, so a later change can be compared.

    .venv/bin/python bench/hostile.py [--seconds 5] [--connections 400] [--idle 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payloads import make_body, new_secret, sign
from targets import HOST, free_port, receiver_argv

MB = 1024 * 1024
BLOCK = 59 * 1024


def rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def receiver(secret: str) -> Iterator[tuple[int, int]]:
    """A receiver process; yields (pid, port) once /healthz answers."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "RECEIVER_WEBHOOK_SECRETS": secret,
            "RECEIVER_DATABASE_URL": f"sqlite:///{tmp}/receiver.db",
            "RECEIVER_LOG_LEVEL": "ERROR",
        }
        log = Path(tmp) / "receiver.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(receiver_argv(port), env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while not healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"receiver did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield proc.pid, port
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


class Probe:
    """Signed webhooks, each on a fresh connection, every 200 ms until stopped."""

    def __init__(self, port: int, secret: str, first_id: int) -> None:
        self.port, self.secret, self.next_id = port, secret, first_id
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.next_id += 1
            body = make_body(self.next_id, "hostile")
            headers = {"X-Signature": sign(self.secret, body), "Content-Type": "application/json"}
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                conn.request("POST", "/webhooks/mta", body=body, headers=headers)
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


def trailer_stream(port: int, seconds: float) -> Callable[[], None]:
    """Stream trailers for ``seconds``; returns nothing to clean up."""
    deadline = time.monotonic() + seconds
    start = (
        b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\n"
    )
    flood = b"a:b\r\n" * 20_000
    while time.monotonic() < deadline:
        with connect(port) as sock, contextlib.suppress(OSError):
            sock.sendall(start)
            while time.monotonic() < deadline:
                sock.sendall(flood)
    return lambda: None


def header_bomb(port: int, connections: int, field: bytes) -> Callable[[], None]:
    """``connections`` connections, each ~59 KiB of ``field`` headers, left unfinished."""
    block, n = [], 0
    size = 0
    while size < BLOCK:
        item = field.replace(b"%d", b"%d" % n)
        block.append(item)
        size += len(item)
        n += 1
    data = b"POST /webhooks/mta HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + b"".join(block)
    socks = []
    for _ in range(connections):
        sock = connect(port)
        socks.append(sock)
        with contextlib.suppress(OSError):
            sock.sendall(data)
    return lambda: [sock.close() for sock in socks] and None


def idle(port: int, connections: int) -> Callable[[], None]:
    """``connections`` silent connections."""
    socks = [connect(port) for _ in range(connections)]
    return lambda: [sock.close() for sock in socks] and None


def run(name: str, pid: int, port: int, secret: str, attack: Callable[[], Callable[[], None]],
        hold: float, first_id: int) -> str:  # fmt: skip
    before = rss(pid)
    peak = before
    with Probe(port, secret, first_id) as probe:
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, rss(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        close = attack()
        time.sleep(hold)  # the attack holds its connections while the probe measures
        close()
        done.set()
        sampler.join()
    time.sleep(1)  # the server notices the closes
    after = rss(pid)
    lat = sorted(probe.latencies) or [float("nan")]
    return (
        f"| {name} | {before / MB:.0f} MB | {(peak - before) / MB:+.0f} MB |"
        f" {(after - before) / MB:+.0f} MB | {statistics.median(lat) * 1000:.1f} ms |"
        f" {lat[-1] * 1000:.1f} ms | {dict(sorted(probe.statuses.items()))} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="length of each scenario")
    parser.add_argument("--connections", type=int, default=400, help="header bomb connections")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 2 * args.idle + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the receiver
    secret = new_secret()
    rows = [
        "| scenario | RSS before | peak growth | growth after | probe p50 | probe max"
        " | probe statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    with receiver(secret) as (pid, port):
        scenarios: list[tuple[str, Callable[[], Callable[[], None]], float]] = [
            ("trailer stream", lambda: trailer_stream(port, args.seconds), 0),
            (
                f"header bomb, {args.connections} x 59 KiB of a:b",
                lambda: header_bomb(port, args.connections, b"a%d:b\r\n"),
                args.seconds,
            ),
            (
                f"header bomb, {args.connections} x 59 KiB in 1 KB fields",
                lambda: header_bomb(port, args.connections, b"X-P%d: " + b"p" * 990 + b"\r\n"),
                args.seconds,
            ),
            (f"{args.idle} idle connections", lambda: idle(port, args.idle), args.seconds),
        ]
        for n, (name, attack, hold) in enumerate(scenarios):
            rows.append(run(name, pid, port, secret, attack, hold, 1_000_000 * (n + 1)))
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
