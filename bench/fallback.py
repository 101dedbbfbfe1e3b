"""Fallback benchmark: 1,000 failed-iMessage timelines against the fake MTA.

Starts the fake MTA (in this process) and one receiver process (SQLite, worker and
outbox running, short grace, high send rate), plays N timelines (message-send, SENT,
DELIVERY_FAILED) as signed webhooks, and waits until every resend went out. Prints
resends/s, the delay from grace expiry to the send (p50/p99), and proves zero duplicate
sends and zero rate-limit violations (the fake MTA enforces the same rate and counts
every request over it).

Baseline, measured in the same run: the same number of sends made directly with the
receiver's MTA client and limiter (no webhooks, no store), i.e. what the rate limit and
the fake allow; the ratio is receiver resends/s over that.

    .venv/bin/python bench/fallback.py [--messages 1000] [--rate 200] [--grace 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.targets import HOST, Target, free_port, receiver_argv, running  # noqa: E402
from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta  # noqa: E402
from receiver.mta import MTAClient, Rate, SlidingWindowLimiter  # noqa: E402
from receiver.settings import Secret  # noqa: E402

API_KEY = "bench-key"
SECRET = "b" * 128


async def baseline(base_url: str, count: int, rate: Rate) -> float:
    """Sends/s of the MTA client alone through the same limiter."""
    client = MTAClient(Secret(API_KEY), SlidingWindowLimiter(rate), base_url=base_url)
    started = time.perf_counter()
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            await client.send(
                {"subscribers": ["+15550000000"], "message": "baseline", "externalId": f"b{i}"},
                request_id=f"baseline-{i}",
            )

    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return count / elapsed


async def play_all(url: str, count: int, first_id: int) -> None:
    """Play ``count`` failed-iMessage timelines, 32 at a time."""
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> None:
            message = TimelineMessage(
                first_id + i,
                f"+1555{i:07d}",
                text=f"Your code is {i:04d}",
                external_id=f"order-{i}",
                sender_name="Acme",
            )
            async with sem:
                results = await play_timeline(url, SECRET, message, [3, 6], client=client)
            if not all(r.ok for r in results):
                raise RuntimeError(f"webhook refused: {results}")

        await asyncio.gather(*(one(i) for i in range(count)))


def resend_rows(db: Path) -> list[tuple[str, float, float, float | None]]:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT state, failed_at, due_at, sent_at FROM resends").fetchall()
        except sqlite3.OperationalError:
            return []


def wait_all_sent(
    db: Path, count: int, deadline: float
) -> list[tuple[str, float, float, float | None]]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        rows = resend_rows(db)
        if sum(1 for r in rows if r[0] == "sent") >= count:
            return rows
        time.sleep(0.2)
    raise TimeoutError(f"only {sum(1 for r in resend_rows(db) if r[0] == 'sent')} of {count} sent")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument(
        "--rate",
        type=int,
        default=50,
        help="send limit per second (default 50: below the failures' arrival rate, so the"
        " limiter, not the arrivals, sets the pace)",
    )
    parser.add_argument("--grace", type=float, default=1.0, help="fallback grace seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rate = Rate(args.rate, 1.0)
    fake = FakeMTA(API_KEY, rate_limit=args.rate, rate_window=1.0)
    with tempfile.TemporaryDirectory() as work, running_fake_mta(fake) as base_url:
        base_rate = asyncio.run(baseline(base_url, args.messages, rate))
        fake.reset()
        db = Path(work) / "bench.db"
        env = {
            "RECEIVER_WEBHOOK_SECRETS": SECRET,
            "RECEIVER_DATABASE_URL": f"sqlite:///{db}",
            "RECEIVER_MTA_API_KEY": API_KEY,
            "RECEIVER_MTA_BASE_URL": base_url,
            "RECEIVER_MTA_SEND_RATE": f"{args.rate}/1s",
            "RECEIVER_FALLBACK_GRACE_SECONDS": str(args.grace),
            "RECEIVER_LOG_LEVEL": "WARNING",
        }
        target = Target("receiver", receiver_argv, env, [free_port()])
        with running(target, Path(work)):
            url = f"http://{HOST}:{target.ports[0]}"
            started = time.perf_counter()
            asyncio.run(play_all(f"{url}/webhooks/mta", args.messages, 500_000))
            played = time.perf_counter() - started
            rows = wait_all_sent(db, args.messages, deadline=60 + args.messages / args.rate * 3)
    sends = fake.sends
    sent_at = [r[3] for r in rows if r[3] is not None]
    delays = [r[3] - r[2] for r in rows if r[3] is not None]  # sent_at - due_at (grace expiry)
    span = max(sent_at) - min(sent_at) if len(sent_at) > 1 else 0.0
    resends_per_s = (len(sent_at) - 1) / span if span else float("nan")
    external_ids = [s.body.get("externalId") for s in sends]
    result = {
        "messages": args.messages,
        "webhooks_played_in_s": round(played, 2),
        "failures_per_s": round(args.messages / played, 1),
        "resends": len(sends),
        "resends_per_s": round(resends_per_s, 1),
        "baseline_sends_per_s": round(base_rate, 1),
        "ratio": round(resends_per_s / base_rate, 2),
        "delay_after_grace_p50_ms": round(percentile(delays, 0.5) * 1e3, 1),
        "delay_after_grace_p99_ms": round(percentile(delays, 0.99) * 1e3, 1),
        "delay_after_grace_mean_ms": round(statistics.fmean(delays) * 1e3, 1),
        "duplicate_sends": len(external_ids) - len(set(external_ids)),
        "rate_limit_violations": fake.rate_limit_violations,
        "configured_rate_per_s": args.rate,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    ok = (
        result["resends"] == args.messages
        and result["duplicate_sends"] == 0
        and result["rate_limit_violations"] == 0
    )
    print("PASS: one send per message, no duplicates, rate respected" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
