"""Open-loop, fixed-rate HTTP/1.1 load generator (wrk cannot hold a fixed rate).

Requests go out on a fixed schedule (``start + i / rate``) over a pool of
keep-alive connections, spread round-robin over one or more ports, one request in
flight per connection. Times come from ``time.perf_counter`` (uvloop's ``loop.time()``
only has millisecond resolution). Latency is measured from the *scheduled* send time, so a
slow server (or an exhausted pool) shows up as latency rather than as a lower
send rate: no coordinated omission. The time from the actual write is kept too,
as "service time", to tell generator lag from server latency.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class FixedRateResult:
    """What one fixed-rate run observed."""

    rate: float
    scheduled: int
    elapsed_s: float = 0.0
    status_200: int = 0
    status_other: int = 0
    errors: int = 0
    timeouts: int = 0
    max_send_lag_ms: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Requests that did not end in a 200."""
        return self.status_other + self.errors + self.timeouts


def percentile(values: Sequence[float], pct: float) -> float:
    """Return the nearest-rank ``pct`` percentile of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def _parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """Return (status, content length, chunked, connection close) of a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    return status, length, chunked, close


async def _skip_chunked(reader: asyncio.StreamReader) -> None:
    """Consume a chunked body, trailers included."""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)


class _Connection:
    """One keep-alive connection, (re)opened lazily."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect if not connected; return the streams."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
        return self._reader, self._writer

    def close(self) -> None:
        """Drop the connection; the next exchange reconnects."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def exchange(self, data: bytes) -> int:
        """Send one request and read its response; return the status code."""
        reader, writer = await self.open()
        writer.write(data)
        head = await reader.readuntil(b"\r\n\r\n")
        status, length, chunked, close = _parse_head(head)
        if chunked:
            await _skip_chunked(reader)
        elif length:
            await reader.readexactly(length)
        if close:
            self.close()
        return status


class _Runner:
    """Holds the pool and the tallies of one run."""

    def __init__(self, result: FixedRateResult, timeout_s: float) -> None:
        self.result = result
        self.timeout_s = timeout_s
        self.idle: asyncio.Queue[_Connection] = asyncio.Queue()

    async def fill_pool(self, ports: Sequence[int], connections: int) -> None:
        """Open ``connections`` connections spread round-robin over ``ports``."""
        pool = [_Connection(ports[i % len(ports)]) for i in range(connections)]
        await asyncio.gather(*(conn.open() for conn in pool))
        for conn in pool:
            self.idle.put_nowait(conn)

    def close_pool(self) -> None:
        """Close every idle connection."""
        while not self.idle.empty():
            self.idle.get_nowait().close()

    async def send(self, data: bytes, scheduled: float) -> None:
        """Send one request on the next idle connection and record the outcome."""
        conn = await self.idle.get()
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                status = await conn.exchange(data)
        except TimeoutError:
            self.result.timeouts += 1
            conn.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.result.errors += 1
            conn.close()
        else:
            done = time.perf_counter()
            self.result.latencies_ms.append((done - scheduled) * 1000)
            self.result.service_ms.append((done - sent) * 1000)
            if status == 200:
                self.result.status_200 += 1
            else:
                self.result.status_other += 1
        finally:
            self.idle.put_nowait(conn)

    async def schedule(self, requests: Sequence[bytes], rate: float) -> set[asyncio.Task[None]]:
        """Start one task per request at its scheduled time; return the tasks."""
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.01
        for i, data in enumerate(requests):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_ms = (time.perf_counter() - due) * 1000
            self.result.max_send_lag_ms = max(self.result.max_send_lag_ms, lag_ms)
            task = asyncio.create_task(self.send(data, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)  # a finished task is garbage, not work
        return tasks


async def run_fixed_rate(
    requests: Sequence[bytes],
    ports: Sequence[int],
    rate: float,
    connections: int,
    timeout_s: float = 5.0,
) -> FixedRateResult:
    """Send every request in ``requests`` at ``rate`` per second; return the tallies.

    The run lasts ``len(requests) / rate`` seconds plus at most ``timeout_s`` to drain;
    requests still unanswered then count as timeouts.
    """
    result = FixedRateResult(rate=rate, scheduled=len(requests))
    runner = _Runner(result, timeout_s)
    await runner.fill_pool(ports, connections)
    # The generator's own pauses would count as the server's latency: no collector passes
    # over the pre-built requests and the tallies while the run lasts.
    gc.collect()
    gc.freeze()
    gc.disable()
    began = time.perf_counter()
    try:
        tasks = await runner.schedule(requests, rate)
        _, pending = await asyncio.wait(tasks, timeout=timeout_s + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        result.timeouts += len(pending)
    finally:
        result.elapsed_s = time.perf_counter() - began
        gc.enable()
        gc.unfreeze()
        runner.close_pool()
    return result
