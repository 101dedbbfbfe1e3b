"""Ingest benchmark: the receiver against a bare Starlette app, measured in the same run.

Both servers run under uvicorn with uvloop and httptools, one process, access log off,
pinned to the same CPU(s), and get the same load of distinct, signed ~400-byte
delivery-status bodies:

1. fixed rate: an open-loop generator (``bench/loadgen.py``) at ``--rate`` requests/s
   -> p50, p99 measured from the scheduled send time (no coordinated omission);
2. saturation: wrk (``bench/wrk_signed.lua``) flat out -> requests/s, p50, p99.

Then, for the receiver, the rows stored in ``events`` are checked against the 200s it
answered. Targets: receiver/bare >= 0.5 at saturation, receiver p99 < 10 ms at 2,000/s.

Run from the repository root::

    .venv/bin/python bench/ingest.py                 # both targets, 10 s per phase
    .venv/bin/python bench/ingest.py --only bare --duration 3 --json

With ``--postgres URL`` the same invocation adds the receiver on PostgreSQL (a fresh
database on that server each time) with 1 and 3 processes, rows ``pg-1`` and ``pg-3``,
and reports how saturation throughput scales (``bench/postgres.py``)::

    .venv/bin/python bench/ingest.py --postgres postgresql://127.0.0.1/test

Several receiver processes get the load spread over their ports: one wrk per port, the
fixed-rate pool round-robin over all of them::

    .venv/bin/python bench/ingest.py --only receiver --processes 3 --server-cpus '' \
        --database-url postgresql://127.0.0.1/test

Rows are counted as deltas, so a database that already holds events is fine.

Exit status: 0 when every request got a 200 and every acknowledged event is stored,
1 otherwise (the performance targets are reported, not enforced).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import backlog
import postgres
import uvloop
from loadgen import FixedRateResult, percentile, run_fixed_rate
from payloads import new_secret, raw_request, signed_bodies, write_wrk_file
from targets import (
    BENCH_DIR,
    HOST,
    Target,
    TargetError,
    free_port,
    receiver_argv,
    row_counter,
    running,
    uvicorn_argv,
)
from wrkrun import SaturationResult, WrkError, run_wrk

TARGET_RATIO = 0.5
TARGET_P99_MS = 10.0


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the summary."""
    print(f"[ingest] {message}", file=sys.stderr, flush=True)


# --- workload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Pre-signed requests shared by every target of the run."""

    secret: str
    wrk_file: Path
    wrk_bodies: int
    fixed_requests: list[bytes]


def build_workload(args: argparse.Namespace, work_dir: Path) -> Workload:
    """Sign enough distinct bodies that neither phase repeats one."""
    secret, run_id = new_secret(), os.urandom(4).hex()
    first_id = int(time.time() * 1000) * 1000
    wrk_count = args.duration * args.max_rate
    fixed_count = args.duration * args.rate
    started = time.perf_counter()
    wrk_file = work_dir / "requests.tsv"
    write_wrk_file(wrk_file, signed_bodies(secret, run_id, first_id, wrk_count))
    fixed = [
        raw_request(item, HOST)
        for item in signed_bodies(secret, run_id, first_id + wrk_count, fixed_count)
    ]
    log(f"signed {wrk_count + fixed_count} distinct bodies in {time.perf_counter() - started:.1f}s")
    return Workload(secret, wrk_file, wrk_count, fixed)


# --- targets ----------------------------------------------------------------------------


def bare_target(cpus: str) -> Target:
    """The baseline: ``bench/bare_app.py`` on one port."""
    return Target(
        name="bare",
        argv=lambda port: uvicorn_argv("bare_app:app", BENCH_DIR, port),
        env={},
        ports=[free_port()],
        cpus=cpus,
        description="Starlette, await request.body(), 200",
    )


def receiver_target(args: argparse.Namespace, secret: str, work_dir: Path) -> Target:
    """``mta-receiver serve`` on ``--processes`` ports sharing one database."""
    database_url = args.database_url or f"sqlite:///{work_dir / 'bench.db'}"
    env = {"RECEIVER_WEBHOOK_SECRETS": secret, "RECEIVER_DATABASE_URL": database_url}
    env.update(item.split("=", 1) for item in args.receiver_env)
    return Target(
        name="receiver",
        argv=lambda port: [*receiver_argv(port), *args.receiver_arg],
        env=env,
        ports=[free_port() for _ in range(args.processes)],
        cpus=args.server_cpus,
        count_rows=row_counter(database_url),
        count_pending=row_counter(database_url, "events WHERE state = 'pending'"),
        description=f"{args.processes} process(es), {database_url.split(':', 1)[0]}"
        + "".join(f" {a}" for a in args.receiver_arg),
    )


# --- durability -------------------------------------------------------------------------


def settled_count(count_rows: Callable[[], int], timeout_s: float = 10.0) -> int:
    """Row count once two readings 0.25 s apart agree (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    previous = count_rows()
    while True:
        time.sleep(0.25)
        current = count_rows()
        if current == previous or time.monotonic() > deadline:
            return current
        previous = current


@dataclass(frozen=True)
class PhaseDurability:
    """Rows one phase added, against the 200s it saw and what else may have landed."""

    phase: str
    rows: int
    acknowledged: int
    unobserved: int
    """Requests that may have been stored without their 200 being seen (in flight at
    wrk's stop, timeouts, socket errors)."""
    repeats: bool = False

    @property
    def passed(self) -> bool:
        """Every 200 is stored, and nothing was stored that was not sent."""
        if self.repeats:
            return self.rows <= self.acknowledged + self.unobserved
        return self.acknowledged <= self.rows <= self.acknowledged + self.unobserved

    def describe(self) -> str:
        """One line for the human report."""
        verdict = "PASS" if self.passed else "FAIL"
        extra = f" (+ up to {self.unobserved} sent, answer unseen)" if self.unobserved else ""
        note = "; bodies repeated, raise --max-rate" if self.repeats else ""
        return (
            f"{self.phase}: {self.rows} rows for {self.acknowledged} x 200{extra}"
            f" -> {verdict}{note}"
        )


def saturation_durability(rows: int, sat: SaturationResult) -> PhaseDurability:
    """wrk stops with requests in flight: their rows may exist, their 200s are unseen."""
    unobserved = max(0, sat.generated - sat.requests) + sat.socket_errors
    return PhaseDurability("saturation", rows, sat.status_200, unobserved, sat.wraps > 0)


def fixed_durability(rows: int, fixed: FixedRateResult) -> PhaseDurability:
    """The generator drains before it returns, so rows must equal 200s exactly."""
    return PhaseDurability("fixed-rate", rows, fixed.status_200, fixed.errors + fixed.timeouts)


# --- the worker's backlog --------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """What the worker left pending after saturation, and how long it took to drain."""

    stored: int
    """Events the saturation phase stored."""
    pending: int
    """Of those (and earlier ones), still owed handler runs when wrk stopped."""
    drain_s: float | None
    """Seconds until nothing was pending; None when the deadline passed first."""

    def describe(self) -> str:
        """One line for the human report."""
        processed = max(0, self.stored - self.pending)
        head = (
            f"worker during saturation: {processed:,} of {self.stored:,} events processed"
            f" (webhooks come first); backlog {self.pending:,}"
        )
        if self.drain_s is None:
            return f"{head}, not drained before the deadline"
        rate = self.pending / self.drain_s if self.drain_s else 0.0
        return f"{head} drained in {self.drain_s:.1f} s ({rate:,.0f} events/s)"


def drain(count_pending: Callable[[], int], stored: int, deadline_s: float = 300.0) -> Backlog:
    """Poll the pending count until it reaches 0 (or ``deadline_s`` passes)."""
    start = time.monotonic()
    pending = count_pending()
    left = pending
    while left:
        if time.monotonic() - start > deadline_s:
            return Backlog(stored, pending, None)
        time.sleep(0.25)
        left = count_pending()
    return Backlog(stored, pending, time.monotonic() - start if pending else 0.0)


# --- one target -------------------------------------------------------------------------


@dataclass
class TargetResult:
    """Everything measured for one target."""

    target: Target
    saturation: SaturationResult
    fixed: FixedRateResult
    durability: list[PhaseDurability]
    backlog: Backlog | None = None

    @property
    def failures(self) -> int:
        """Requests of both phases that did not get a 200."""
        return self.saturation.failures + self.fixed.failures


def fixed_rate_phase(target: Target, work: Workload, args: argparse.Namespace) -> FixedRateResult:
    """Run the open-loop generator with the garbage collector out of the way."""
    log(f"{target.name}: fixed rate {args.rate}/s for {args.duration}s")
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return uvloop.run(
            run_fixed_rate(work.fixed_requests, target.ports, args.rate, args.connections)
        )
    finally:
        gc.enable()
        gc.unfreeze()


def saturation_phase(target: Target, work: Workload, args: argparse.Namespace) -> SaturationResult:
    """Run wrk flat out."""
    log(f"{target.name}: saturation for {args.duration}s, {args.connections} connections")
    sat = run_wrk(
        target.ports,
        work.wrk_file,
        threads=args.threads,
        connections=args.connections,
        duration_s=args.duration,
    )
    log(f"{target.name}: {sat.requests_per_s:,.0f} req/s")
    return sat


def bench_target(
    target: Target, work: Workload, args: argparse.Namespace, work_dir: Path
) -> TargetResult:
    """Start ``target``, run both phases against it, stop it.

    The fixed-rate phase runs first, on a quiet server: after saturation the receiver's
    worker may still have a backlog that would leak into the latency figures.
    """
    count = target.count_rows or (lambda: 0)
    with running(target, work_dir):
        log(f"{target.name} up on {list(target.ports)} ({target.description})")
        rows_before = count()
        fixed = fixed_rate_phase(target, work, args)
        rows_after_fixed = settled_count(count) if target.count_rows else 0
        sat = saturation_phase(target, work, args)
        rows_after_sat = settled_count(count) if target.count_rows else 0
        backlog = None
        if target.count_pending is not None and "--no-worker" not in args.receiver_arg:
            log(f"{target.name}: waiting for the worker to drain its backlog")
            backlog = drain(target.count_pending, rows_after_sat - rows_after_fixed)
    durability = []
    if target.count_rows:
        durability = [
            fixed_durability(rows_after_fixed - rows_before, fixed),
            saturation_durability(rows_after_sat - rows_after_fixed, sat),
        ]
    return TargetResult(target, sat, fixed, durability, backlog)


# --- report -----------------------------------------------------------------------------


def ratio(results: Sequence[TargetResult]) -> float | None:
    """Receiver req/s over bare req/s at saturation, when both ran."""
    by_name = {r.target.name: r.saturation.requests_per_s for r in results}
    if "bare" in by_name and "receiver" in by_name and by_name["bare"]:
        return by_name["receiver"] / by_name["bare"]
    return None


def summary(
    results: Sequence[TargetResult],
    args: argparse.Namespace,
    drained: backlog.DrainResult | None = None,
) -> dict[str, Any]:
    """Machine-readable summary of the run."""
    targets = {}
    for r in results:
        lat = r.fixed.latencies_ms
        targets[r.target.name] = {
            "description": r.target.description,
            "processes": len(r.target.ports),
            "saturation": {**asdict(r.saturation), "requests_per_s": r.saturation.requests_per_s,
                           "non_200": r.saturation.failures},
            "fixed_rate": {
                "rate": r.fixed.rate, "scheduled": r.fixed.scheduled,
                "elapsed_s": r.fixed.elapsed_s, "status_200": r.fixed.status_200,
                "non_200": r.fixed.failures, "max_send_lag_ms": r.fixed.max_send_lag_ms,
                "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                "p999_ms": percentile(lat, 99.9), "max_ms": max(lat, default=0.0),
                "service_p50_ms": percentile(r.fixed.service_ms, 50),
                "service_p99_ms": percentile(r.fixed.service_ms, 99),
            },
            "durability": [{**asdict(d), "passed": d.passed} for d in r.durability],
            "backlog": asdict(r.backlog) if r.backlog else None,
        }  # fmt: skip
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "targets": targets,
        "ratio_receiver_over_bare": ratio(results),
        "postgres_scaling": postgres.scaling(results),
        "postgres_drain": {**asdict(drained), "events_per_s": drained.rate} if drained else None,
        "target_ratio": TARGET_RATIO,
        "target_p99_ms_at_rate": TARGET_P99_MS,
        "ok": all(r.failures == 0 and all(d.passed for d in r.durability) for r in results),
    }


def print_table(
    results: Sequence[TargetResult],
    args: argparse.Namespace,
    drained: backlog.DrainResult | None = None,
) -> None:
    """The human report: one line per target and phase, then the verdicts."""
    print(f"\n{'server':<10} {'phase':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    for r in results:
        s, f = r.saturation, r.fixed
        print(
            f"{r.target.name:<10} {'saturation':<16} {s.requests_per_s:>9,.0f} "
            f"{s.p50_ms:>8.2f} {s.p99_ms:>8.2f} {s.failures:>8}"
        )
        print(
            f"{r.target.name:<10} {f'fixed {args.rate}/s':<16} "
            f"{f.status_200 / f.elapsed_s if f.elapsed_s else 0:>9,.0f} "
            f"{percentile(f.latencies_ms, 50):>8.2f} {percentile(f.latencies_ms, 99):>8.2f} "
            f"{f.failures:>8}"
        )
    print()
    print_verdicts(results, args)
    if drained is not None:
        print(f"pg-1 {drained.describe()}")


def print_verdicts(results: Sequence[TargetResult], args: argparse.Namespace) -> None:
    """Ratio, fixed-rate p99 and durability lines against their targets."""
    value = ratio(results)
    if value is not None:
        verdict = "PASS" if value >= TARGET_RATIO else "MISS"
        print(
            f"ratio receiver/bare at saturation: {value:.2f} (target >= {TARGET_RATIO}: {verdict})"
        )
    for r in results:
        p99 = percentile(r.fixed.latencies_ms, 99)
        verdict = "PASS" if p99 < TARGET_P99_MS else "MISS"
        print(
            f"{r.target.name} p99 at {args.rate}/s: {p99:.2f} ms "
            f"(target < {TARGET_P99_MS:g} ms: {verdict}; generator max send lag "
            f"{r.fixed.max_send_lag_ms:.2f} ms)"
        )
        for d in r.durability:
            print(f"{r.target.name} durability, {d.describe()}")
        if r.backlog is not None:
            print(f"{r.target.name} {r.backlog.describe()}")
        if r.failures:
            print(f"{r.target.name}: {r.failures} requests did not get a 200 -> FAIL")
    if line := postgres.describe_scaling(results):
        print(line)


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    two_cpus = (os.cpu_count() or 1) >= 2
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=10, help="seconds per phase (10)")
    p.add_argument("--connections", type=int, default=64, help="connections per phase (64)")
    p.add_argument("--rate", type=int, default=2000, help="fixed-rate requests/s (2000)")
    p.add_argument(
        "--only",
        choices=["bare", "receiver", "drain"],
        help="run one target (drain: only the --postgres backlog drain)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary, not a table")
    p.add_argument("--threads", type=int, default=1, help="wrk threads per wrk process (1)")
    p.add_argument(
        "--max-rate",
        type=int,
        default=25_000,
        help="req/s the saturation bodies are sized for (25000)",
    )
    p.add_argument("--processes", type=int, default=1, help="receiver processes (1)")
    p.add_argument("--database-url", help="receiver database (default: SQLite in a temp dir)")
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="also run the receiver on PostgreSQL (fresh databases on this server) with 1"
        " and 3 processes, e.g. postgresql://127.0.0.1/test; skipped with the reason when"
        " the server does not answer",
    )
    p.add_argument(
        "--receiver-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the receiver (repeatable)",
    )
    p.add_argument(
        "--receiver-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for 'mta-receiver serve', e.g. --receiver-arg=--no-worker",
    )
    p.add_argument(
        "--client-cpus",
        default="0" if two_cpus else "",
        help="CPUs for wrk and the generator ('' = no pinning)",
    )
    p.add_argument(
        "--server-cpus",
        default="1" if two_cpus else "",
        help="CPUs for the servers ('' = no pinning)",
    )
    p.add_argument(
        "--drain-events",
        type=int,
        default=30_000,
        help="with --postgres: events accepted with the worker off, then drained by one"
        " worker (30000; 0 skips the drain)",
    )
    p.add_argument("--drain-rate", type=int, default=2000, help="req/s while accepting them (2000)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, database)")
    return p.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so every server is stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    args: argparse.Namespace, work_dir: Path
) -> tuple[list[TargetResult], backlog.DrainResult | None]:
    """Build the workload, benchmark each selected target in turn, then the drain."""
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    work = build_workload(args, work_dir)
    targets = [bare_target(args.server_cpus), receiver_target(args, work.secret, work_dir)]
    results = [
        bench_target(t, work, args, work_dir) for t in targets if args.only in (None, t.name)
    ]
    if args.postgres and args.only in (None, "receiver", "drain"):
        if (why := postgres.reachable(args.postgres)) is not None:
            log(f"PostgreSQL rows skipped: {why}")
        else:
            if args.only != "drain":
                results += postgres.postgres_results(
                    args,
                    lambda variant: receiver_target(variant, work.secret, work_dir),
                    lambda target: bench_target(target, work, args, work_dir),
                )
            if args.drain_events > 0:
                log(f"pg-drain: {args.drain_events} events with the worker off, then a worker")
                drained = backlog.backlog_drain(
                    args,
                    lambda variant: receiver_target(variant, work.secret, work_dir),
                    work.secret,
                    work_dir,
                    postgres.fresh_database,
                )
                log(drained.describe())
                return results, drained
    return results, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="mta-ingest-"))
    try:
        results, drained = run(args, work_dir)
    except (TargetError, WrkError) as exc:
        log(f"failed: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    finally:
        if args.keep:
            log(f"work dir kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    report = summary(results, args, drained)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(results, args, drained)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
