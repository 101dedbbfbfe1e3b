"""A PostgreSQL outage under load: only 200s that are stored, and 503s; never a 500.

Stops the local cluster for a few seconds (``pg_ctlcluster``), so it runs only as root
where that tool exists, and always starts the cluster again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import (
    Process,
    delivery,
    encode,
    process_env,
    signed_headers,
    start_process,
    wait_for,
)
from ..pg import fresh_database_sync, query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CTL = shutil.which("pg_ctlcluster")
CLUSTER = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else ""


def cluster(action: str) -> None:
    """Stop or start the local cluster (``pg_ctlcluster VERSION main ACTION``)."""
    assert CTL is not None
    subprocess.run(
        [CTL, "--skip-systemctl-redirect", CLUSTER, "main", action], check=True, timeout=60
    )


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the local cluster."""
    with fresh_database_sync() as url:
        yield url


class Load:
    """Threads posting signed webhooks, each with a new message id, until stopped."""

    def __init__(self, url: str, threads: int = 24) -> None:
        self.url = url
        self.answers: list[tuple[int, int]] = []  # (message_id, status)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_id = 100_000
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self.stop.is_set():
                with self.lock:
                    self.next_id += 1
                    message_id = self.next_id
                body = encode(delivery(message_id=message_id))
                try:
                    answer = client.post(
                        f"{self.url}/webhooks/mta", content=body, headers=signed_headers(body)
                    )
                    status = answer.status_code
                    if status == 503 and answer.headers.get("retry-after") != "5":
                        status = -503  # a 503 without Retry-After fails the test below
                except httpx.TransportError:
                    status = 0  # no answer at all: fails the test below
                with self.lock:
                    self.answers.append((message_id, status))

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for _, s in self.answers if s == status)


@pytest.mark.skipif(CTL is None or os.geteuid() != 0, reason="needs pg_ctlcluster and root")
def test_postgres_outage_under_load_answers_only_stored_200s_and_503s(
    tmp_path: Path, processes: list[Process], database: str
) -> None:
    """While PostgreSQL is stopped and started again under load, every answer is a 200
    for a stored webhook or a 503 (with Retry-After), and 200s come back after."""
    env = process_env(tmp_path, RECEIVER_DATABASE_URL=database, RECEIVER_RUN_WORKER="false")
    processes.append(process := start_process(tmp_path, env))
    load = Load(process.url)
    for thread in load.threads:
        thread.start()
    try:
        wait_for(lambda: load.count(200) >= 50, timeout=20)
        try:
            cluster("stop")
            wait_for(lambda: load.count(503) >= 50, timeout=10)
        finally:
            cluster("start")
        after = load.count(200)
        wait_for(lambda: load.count(200) >= after + 50, timeout=30)
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join(timeout=20)
    statuses = {status for _, status in load.answers}
    assert statuses <= {200, 503}, statuses
    accepted = {mid for mid, status in load.answers if status == 200}
    stored = {int(row[0]) for row in query(database, "SELECT message_id FROM events")}
    assert accepted <= stored
    assert "Exception in ASGI application" not in process.output()
