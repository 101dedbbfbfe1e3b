"""`mta-receiver backfill` as a process: every path ends, with its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from receiver.fake_mta import FakeMTA, running_fake_mta

from ..conftest import free_port, process_env

TODAY = "2026-01-01"


def backfill(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a child process, under a timeout."""
    return subprocess.run(
        [sys.executable, "-m", "receiver", "backfill", *args],
        env=process_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_every_path_exits(tmp_path: Path) -> None:
    """No API key: 2; a bad date or --since after --until: 2; MTA unreachable: 1, one
    line, no traceback; the fake MTA: 0 with the summary."""
    no_key = backfill(tmp_path, "--since", TODAY)
    assert no_key.returncode == 2
    assert "RECEIVER_MTA_API_KEY" in no_key.stderr
    assert backfill(tmp_path, "--since", "yesterday").returncode == 2
    backwards = backfill(tmp_path, "--since", "2026-01-02", "--until", TODAY)
    assert backwards.returncode == 2
    assert "--since must not be after --until" in backwards.stderr
    closed = f"http://127.0.0.1:{free_port()}/v3"
    down = backfill(
        tmp_path, "--since", TODAY, RECEIVER_MTA_API_KEY="k", RECEIVER_MTA_BASE_URL=closed
    )
    assert down.returncode == 1, down.stderr
    assert "cannot reach MTA" in down.stderr
    assert "Traceback" not in down.stderr
    fake = FakeMTA("k")
    with running_fake_mta(fake) as url:
        httpx.post(
            url.removesuffix("/v3") + "/_fake/outage", json={"down": True}
        ).raise_for_status()
        assert fake.webhooks_down
        done = backfill(
            tmp_path, "--since", TODAY, RECEIVER_MTA_API_KEY="k", RECEIVER_MTA_BASE_URL=url
        )
    assert done.returncode == 0, done.stderr
    assert f"backfill {TODAY}..2" in done.stdout  # until: today
    assert ": 0 rows read, 0 already held, 0 stored, 0 unreadable" in done.stdout
