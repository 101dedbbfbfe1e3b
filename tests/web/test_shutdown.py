"""Shutdown of a real ``serve`` process while another process holds the SQLite lock."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from ..conftest import Process
from .test_process import start_holding

pytestmark = pytest.mark.slow


def test_sigterm_while_the_store_is_locked_still_closes_the_store(
    tmp_path: Path, processes: list[Process]
) -> None:
    """SIGTERM while another process holds the database's write lock: releasing the
    worker's lease fails (logged), but the store is still closed, the shutdown is not
    reported as failed, and the process exits."""
    _, process = start_holding(tmp_path, processes, 11, RECEIVER_SHUTDOWN_GRACE_SECONDS="0.2")
    locker = sqlite3.connect(tmp_path / "receiver.db", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=40) in (0, -signal.SIGTERM)
    finally:
        locker.close()
    output = process.output()
    assert "Application shutdown failed" not in output
    assert "shutdown: stopping the worker failed" in output
    assert "receiver stopped" in output
