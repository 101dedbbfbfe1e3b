"""Shared test fixtures: real servers on loopback, SQLite files, signed webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from receiver import Registry, Settings, create_app, sign
from receiver.cli import main
from receiver.fake_mta import FakeMTA, running_fake_mta
from receiver.settings import Secret
from receiver.store import ResendState, Store
from receiver.web.server import deadline_protocol

from .pg import BACKENDS, empty_database, opened_store

SECRET = "a" * 64 + "b" * 64  # MTA secrets are typically 128 hex characters
OLD_SECRET = "0123456789abcdef" * 8
ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``condition`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def delivery(message_id: int = 912345, status: int = 6, **fields: Any) -> dict[str, Any]:
    """A delivery-status payload as MTA documents it."""
    body: dict[str, Any] = {
        "destinationNumber": "+15551234567",
        "messageId": message_id,
        "externalId": f"order-{message_id}",
        "status": status,
        "tags": {"campaign": "spring"},
        "senderName": "Acme",
        "type": "delivery-status",
    }
    body.update(fields)
    return body


def encode(payload: dict[str, Any] | bytes) -> bytes:
    """JSON bytes of a payload (bytes pass through)."""
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Headers MTA would send with ``body``."""
    return {"X-Signature": sign(secret, body), "Content-Type": "application/json"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: a SQLite file in ``tmp_path``, fast retries, short leases."""
    values: dict[str, Any] = {
        "webhook_secrets": (Secret(SECRET), Secret(OLD_SECRET)),
        "database_url": f"sqlite:///{tmp_path / 'receiver.db'}",
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "worker_poll_seconds": 0.05,
        "read_timeout": 2.0,
        "shutdown_grace_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Recorder:
    """A registry whose handlers record what they saw."""

    registry: Registry = field(default_factory=Registry)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, handler: str, event: Any) -> None:
        with self.lock:
            self.calls.append((handler, event))

    def seen(self, handler: str) -> list[Any]:
        with self.lock:
            return [event for name, event in self.calls if name == handler]


@dataclass
class Server:
    """A receiver running in uvicorn on loopback, in a thread of this process."""

    url: str
    app: Any
    client: httpx.Client

    def post(
        self, payload: dict[str, Any] | bytes, secret: str = SECRET, event: str | None = None
    ) -> httpx.Response:
        body = encode(payload)
        params = {"event": event} if event else None
        return self.client.post(
            "/webhooks/mta", content=body, headers=signed_headers(body, secret), params=params
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the store from the test (a separate SQLite connection)."""
        import sqlite3

        path = self.app.settings.database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return conn.execute(sql, params).fetchall()


@contextlib.contextmanager
def running(
    settings: Settings, registry: Registry | None = None, store: Any = None
) -> Iterator[Server]:
    """Serve ``create_app(settings, registry, store)`` with uvicorn on a free loopback port."""
    app = create_app(settings, registry if registry is not None else Registry(), store=store)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=deadline_protocol(settings.read_timeout),
        loop="asyncio",
        lifespan="on",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive())
    assert server.started, "the receiver did not start"
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield Server(url, app, client)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the receiver did not stop"


@pytest.fixture
def recorder() -> Recorder:
    """A fresh recording registry."""
    return Recorder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings on a fresh SQLite file."""
    return make_settings(tmp_path)


# --- the receiver as a real process (kill -9, SIGTERM, start-up errors) -----------------


@dataclass
class Process:
    """``mta-receiver serve`` in a child process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        """``/healthz`` answers 200; raises with the log when the process has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"receiver exited {self.proc.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL, if still running, and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a child receiver: test secrets, a SQLite file in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(
        {
            "RECEIVER_WEBHOOK_SECRETS": SECRET,
            "RECEIVER_DATABASE_URL": f"sqlite:///{tmp_path / 'receiver.db'}",
            "RECEIVER_WORKER_POLL_SECONDS": "0.05",
            "RECEIVER_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    env.update(extra)
    return env


def start_process(tmp_path: Path, env: dict[str, str], *args: str, wait: bool = True) -> Process:
    """Start a receiver process; with ``wait``, return once ``/healthz`` answers."""
    port = free_port()
    log = tmp_path / f"receiver-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    process = Process(proc, f"http://127.0.0.1:{port}", log)
    if wait:
        wait_for(process.healthy, timeout=20, interval=0.05)
    return process


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Receiver processes started by a test; all are killed at its end."""
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion from sync test code."""
    return asyncio.run(coro)


# --- a store of each backend (the Store contract's fixtures) ---


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each backend."""
    async with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store of each backend (modules with their own `store` override it)."""
    async with opened_store(store_url) as opened:
        yield opened


# --- the command line, in-process ---


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``mta-receiver argv`` in-process; its exit status and stdout."""
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().out


@contextlib.contextmanager
def fake_mta_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[FakeMTA]:
    """A running fake MTA, and the CLI's environment pointing at it and at the database."""
    fake = FakeMTA()
    with running_fake_mta(fake) as base_url:
        monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
        monkeypatch.setenv("RECEIVER_DATABASE_URL", database_url)
        monkeypatch.setenv("RECEIVER_MTA_API_KEY", fake.api_key)
        monkeypatch.setenv("RECEIVER_MTA_BASE_URL", base_url)
        yield fake


# --- resends ---


async def schedule_resend(
    store: Store,
    original: str,
    *,
    phone: str = "+15550001111",
    at: float = 0.0,
    state: ResendState | str = ResendState.SCHEDULED,
    reason: str | None = None,
    account: str = "default",
) -> None:
    """One resend of ``original`` of ``account``, failed and due at ``at``, in ``state``."""
    await store.resends.schedule(
        original_message_id=original,
        phone=phone,
        tags={},
        original_external_id=None,
        failure_status=6,
        failed_at=at,
        due_at=at,
        now=at,
        state=ResendState(state),
        reason=reason,
        account=account,
    )
