"""The backlog drain of ``bench/ingest.py --postgres``: a burst accepted with the worker
off, then one ``mta-receiver worker`` started, and how fast it works through it.

1. ``serve --no-worker`` on a fresh database accepts ``--drain-events`` distinct
   delivery-status webhooks (the fixed-rate generator, at ``--drain-rate``, 2,000/s by default);
2. the server stops; one ``worker`` process starts on the same database;
3. the pending count is polled until it reaches 0. The rate is events over the time
   from the first event done to the last (process start-up is not counted).

CPU per event: the worker process's user+system time over the drain, and the whole
user+system time of the PostgreSQL backends serving the bench database (read from
``/proc`` just before the worker stops: its pool and listener connections, opened at
its start). Both stay meaningful on a machine busy with other work, unlike the rate.
PostgreSQL's shared processes (WAL writer, checkpointer) are not counted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop
from loadgen import run_fixed_rate
from payloads import raw_request, signed_bodies
from targets import HOST, ROOT, Target, running


@dataclass(frozen=True)
class DrainResult:
    """One drain: how many events, how long, and the CPU it cost."""

    events: int
    accepted: int
    drain_s: float | None
    worker_cpu_s: float
    postgres_cpu_s: float

    @property
    def rate(self) -> float:
        """Events per second (0 when the deadline passed)."""
        return self.events / self.drain_s if self.drain_s else 0.0

    def describe(self) -> str:
        """One line for the human report."""
        if self.drain_s is None:
            return f"backlog drain: {self.events:,} events not drained before the deadline"
        per_event = 1e6 / self.events if self.events else 0.0
        return (
            f"backlog drain (serve --no-worker, then one worker): {self.events:,} events in"
            f" {self.drain_s:.1f} s ({self.rate:,.0f} events/s); CPU per event:"
            f" worker {self.worker_cpu_s * per_event:,.0f} us,"
            f" postgres {self.postgres_cpu_s * per_event:,.0f} us"
        )


def _cpu_seconds(pid: int) -> float:
    """User + system seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends_cpu_seconds(url: str) -> float:
    """User + system seconds of the backends connected to ``url``'s database."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def pids() -> list[int]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return [row[0] for row in rows]

    return sum(_cpu_seconds(pid) for pid in asyncio.run(pids()))


def accept(target: Target, secret: str, count: int, rate: int, connections: int) -> int:
    """Post ``count`` distinct signed webhooks at ``rate``; return how many got a 200."""
    run_id, first_id = os.urandom(4).hex(), int(time.time() * 1000) * 1000
    requests = [raw_request(item, HOST) for item in signed_bodies(secret, run_id, first_id, count)]
    result = uvloop.run(run_fixed_rate(requests, target.ports, rate, connections))
    return result.status_200


def drain(
    env: dict[str, str],
    count_pending: Callable[[], int],
    log_dir: Path,
    cpus: str,
    deadline_s: float = 300.0,
) -> tuple[int, float | None, float, float]:
    """Start one worker, wait until nothing is pending; (events, seconds, CPU, PG CPU)."""
    script = Path(sys.executable).with_name("mta-receiver")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "receiver.cli"]
    pin = ["taskset", "-c", cpus] if cpus else []
    pending = count_pending()
    with (log_dir / "drain-worker.log").open("wb") as out:
        proc = subprocess.Popen(
            [*pin, *head, "worker"], env={**os.environ, **env}, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + deadline_s
        while (left := count_pending()) == pending and time.monotonic() < deadline:
            time.sleep(0.01)
        started, cpu0 = time.monotonic(), _cpu_seconds(proc.pid)
        done = pending - left
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = count_pending()
        took = time.monotonic() - started if not left else None
        cpu = _cpu_seconds(proc.pid) - cpu0
        pg = _backends_cpu_seconds(env["RECEIVER_DATABASE_URL"])
        # The events done before the clock started are not in the rate.
        return pending - done, took, cpu, pg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backlog_drain(
    args: argparse.Namespace,
    make_target: Callable[[argparse.Namespace], Target],
    secret: str,
    work_dir: Path,
    fresh_database: Callable[[str], object],
) -> DrainResult:
    """Accept ``args.drain_events`` with the worker off, then time one worker's drain."""
    with fresh_database(args.postgres) as url:  # type: ignore[attr-defined]
        no_worker: Sequence[str] = [*args.receiver_arg, "--no-worker"]
        variant = argparse.Namespace(
            **{**vars(args), "processes": 1, "database_url": url, "receiver_arg": no_worker}
        )
        target = make_target(variant)
        target.name = "pg-drain"
        with running(target, work_dir):
            accepted = accept(target, secret, args.drain_events, args.drain_rate, 64)
        assert target.count_pending is not None
        events, took, cpu, pg = drain(
            dict(target.env), target.count_pending, work_dir, args.server_cpus
        )
    return DrainResult(events, accepted, took, cpu, pg)
