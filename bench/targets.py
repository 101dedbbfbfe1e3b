"""Servers under test: how to start them, wait for them and stop them.

A :class:`Target` is one command run as one or more processes, each on its own
loopback port (several receiver processes sharing one PostgreSQL database, say).
Loads that can spread across ports (``bench/loadgen.py``) use every port; wrk uses
the first one.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


@dataclass
class Target:
    """A server under test."""

    name: str
    argv: Callable[[int], list[str]]
    """Command line of the process that listens on the given port."""
    env: Mapping[str, str]
    ports: Sequence[int]
    cpus: str = ""
    """``taskset`` CPU list every process is pinned to; empty for no pinning."""
    count_rows: Callable[[], int] | None = None
    """Rows stored so far, for the durability check; None when the target stores nothing."""
    count_pending: Callable[[], int] | None = None
    """Events the worker still owes handler runs; None when the target has no worker."""
    description: str = ""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_argv(app: str, app_dir: Path, port: int) -> list[str]:
    """Uvicorn command line with the settings both servers share."""
    return [
        sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(app_dir),
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def receiver_argv(port: int) -> list[str]:
    """Command line of one receiver process: the console script if installed."""
    script = Path(sys.executable).with_name("mta-receiver")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "receiver.cli"]
    return [*head, "serve", "--host", HOST, "--port", str(port)]


def sqlite_row_counter(db_path: Path, table: str = "events") -> Callable[[], int]:
    """Return a function counting the rows of ``table`` in the SQLite file, read-only."""

    def count() -> int:
        if not db_path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            row = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0])

    return count


def postgres_row_counter(url: str, table: str = "events") -> Callable[[], int]:
    """Return a function counting the rows of ``table`` in PostgreSQL (needs asyncpg)."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def fetch() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    def count() -> int:
        try:
            return asyncio.run(fetch())
        except asyncpg.UndefinedTableError:
            return 0

    return count


def row_counter(database_url: str, table: str = "events") -> Callable[[], int]:
    """Row counter for a ``RECEIVER_DATABASE_URL`` (``sqlite:///PATH`` or PostgreSQL)."""
    if database_url.startswith("sqlite:///"):
        return sqlite_row_counter(ROOT / database_url.removeprefix("sqlite:///"), table)
    return postgres_row_counter(database_url, table)


def _healthy(port: int) -> bool:
    """True when ``GET /healthz`` answers 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(path: Path, lines: int = 30) -> str:
    """Last ``lines`` lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class TargetError(RuntimeError):
    """A server did not come up."""


def _wait_ready(
    target: Target,
    procs: Sequence[subprocess.Popen[bytes]],
    logs: Sequence[Path],
    deadline_s: float,
) -> None:
    """Poll every port's /healthz until 200; raise if a process dies or time runs out."""
    deadline = time.monotonic() + deadline_s
    waiting = dict(zip(target.ports, zip(procs, logs, strict=True), strict=True))
    while waiting:
        for port, (proc, log) in list(waiting.items()):
            if proc.poll() is not None:
                raise TargetError(
                    f"{target.name} on port {port} exited {proc.returncode}:\n{_tail(log)}"
                )
            if _healthy(port):
                del waiting[port]
        if waiting and time.monotonic() > deadline:
            raise TargetError(f"{target.name} not ready after {deadline_s:.0f}s on {list(waiting)}")
        if waiting:
            time.sleep(0.05)


@contextlib.contextmanager
def running(target: Target, log_dir: Path, ready_s: float = 30.0) -> Iterator[list[Path]]:
    """Run every process of ``target`` until the block exits; yield their log paths."""
    env = {**os.environ, **target.env}
    pin = ["taskset", "-c", target.cpus] if target.cpus else []
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for port in target.ports:
            log = log_dir / f"{target.name}-{port}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(subprocess.Popen(
                    [*pin, *target.argv(port)], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
        _wait_ready(target, procs, logs, ready_s)
        yield logs
    finally:
        for proc in procs:
            _stop(proc)
