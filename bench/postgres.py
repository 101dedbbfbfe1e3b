"""The PostgreSQL rows of ``bench/ingest.py``: the receiver on a fresh database with 1 and
3 processes, in the same invocation (and on the same workload) as the SQLite row.

Each process count gets its own ``CREATE DATABASE bench_<random>``, dropped afterwards,
so the row counts and the insert path start from an empty table every time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PROCESS_COUNTS = (1, 3)


def reachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers at ``admin_url``, else why not."""
    try:
        asyncio.run(_admin_execute(admin_url, "SELECT 1"))
    except Exception as exc:  # any failure means: skip the PostgreSQL rows, say why
        return f"{type(exc).__name__}: {exc}"
    return None


async def _admin_execute(admin_url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of ``admin_url``; its URL; dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_results(
    args: argparse.Namespace,
    make_target: Callable[[argparse.Namespace], Any],
    bench: Callable[[Any], Any],
) -> list[Any]:
    """Benchmark the receiver on PostgreSQL with each of `PROCESS_COUNTS` processes."""
    results = []
    for count in PROCESS_COUNTS:
        with fresh_database(args.postgres) as url:
            variant = argparse.Namespace(**{**vars(args), "processes": count, "database_url": url})
            target = dataclasses.replace(make_target(variant), name=f"pg-{count}")
            results.append(bench(target))
    return results


def scaling(results: Sequence[Any]) -> dict[str, float] | None:
    """Saturation req/s of the PostgreSQL rows and the 3-over-1 process ratio."""
    rates = {r.target.name: r.saturation.requests_per_s for r in results}
    if "pg-1" not in rates or "pg-3" not in rates or not rates["pg-1"]:
        return None
    return {"pg-1": rates["pg-1"], "pg-3": rates["pg-3"], "ratio": rates["pg-3"] / rates["pg-1"]}


def describe_scaling(results: Sequence[Any]) -> str | None:
    """One line for the human report."""
    found = scaling(results)
    if found is None:
        return None
    return (
        f"postgres scaling at saturation: 1 process {found['pg-1']:,.0f} req/s, 3 processes"
        f" {found['pg-3']:,.0f} req/s (x{found['ratio']:.2f})"
    )
