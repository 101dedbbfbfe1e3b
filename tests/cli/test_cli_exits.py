"""Every command ends on every kind of bad setting; Ctrl-C on `serve` in a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import ROOT, free_port, process_env, wait_for

COMMANDS = (
    ("serve", "--port", "0"),
    ("worker",),
    ("send", "--to", "+15551234567", "--text", "hi"),
    ("trigger", "message-reply", "--url", "http://127.0.0.1:1/webhooks/mta"),
    ("events", "list"),
    ("events", "show", "1"),
    ("events", "list", "--account", "no-such-account"),
    ("replay", "--id", "1", "--yes"),
    ("dead-letters", "list"),
    ("dead-letters", "retry", "--all"),
    ("resends", "list"),
    ("resends", "show", "1", "--account", "default"),
    ("resends", "send", "1"),
    ("purge", "--older-than", "30d"),
    ("db", "status"),
    ("db", "upgrade"),
    ("doctor",),
    ("webhooks", "list"),
    ("webhooks", "register", "--url", "https://x.example/webhooks/mta", "--account", "nope"),
    ("backfill", "--since", "2026-01-01", "--account", "default"),
)
BAD_SETTINGS = {
    "no webhook secret": {"RECEIVER_WEBHOOK_SECRETS": ""},
    "bad database scheme": {"RECEIVER_DATABASE_URL": "mysql://x/y"},
    "PostgreSQL down": {"RECEIVER_DATABASE_URL": "postgresql://127.0.0.1:1/test"},
    "not a number": {"RECEIVER_MAX_ATTEMPTS": "many"},
    "bad log level": {"RECEIVER_LOG_LEVEL": "LOUD"},
    "bad handlers": {"RECEIVER_HANDLERS": "no_such_module_here"},
    "bad text lookup": {
        "RECEIVER_MTA_API_KEY": "key-0123456789abcdef",
        "RECEIVER_MTA_BASE_URL": "http://127.0.0.1:1/v3",
        "RECEIVER_FALLBACK_TEXT_LOOKUP": "no_such_module_here:lookup",
    },
}
LIMIT = 30.0  # seconds a command may take to give up (the machine may be busy)


def run(tmp_path: Path, args: tuple[str, ...], bad: dict[str, str]) -> tuple[int | None, str]:
    """Run one command with one bad setting; None as status when it had to be killed."""
    env = process_env(tmp_path, RECEIVER_LOG_FORMAT="text", **bad)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "receiver", *args],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
    except subprocess.TimeoutExpired as exc:
        return None, str(exc.stdout or "") + str(exc.stderr or "")
    return done.returncode, done.stdout + done.stderr


def test_every_command_exits_on_every_bad_setting(tmp_path: Path) -> None:
    """Each command with each kind of bad setting ends within the limit, without a
    traceback; a refusal says why in its last line."""
    jobs = [(args, name, bad) for args in COMMANDS for name, bad in BAD_SETTINGS.items()]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: run(tmp_path, job[0], job[2]), jobs))
    problems = []
    for (args, name, _), (status, out) in zip(jobs, results, strict=True):
        what = f"{' '.join(args)} with {name}"
        if status is None:
            problems.append(f"{what}: still running after {LIMIT:.0f} s")
        elif "Traceback" in out:
            problems.append(f"{what}: traceback\n{out}")
        elif status != 0 and not out.strip():
            problems.append(f"{what}: exit {status} without a word")
    assert not problems, "\n".join(problems)


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    """A bad setting refuses every command with exit 2, the variable named first."""
    for args in COMMANDS:
        status, out = run(tmp_path, args, {"RECEIVER_LOG_LEVEL": "LOUD"})
        assert status == 2, (args, out)
        lines = out.strip().splitlines()
        assert (
            "RECEIVER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL," in lines[0]
        )
        if args != ("doctor",):  # the doctor adds its fix on a second line
            assert len(lines) == 1, (args, out)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_failed_start_exits_with_one_short_line(tmp_path: Path, command: str) -> None:
    """A start-up failure after the store opened ends the process (it used to stay
    alive, not listening), with the reason first on one short line."""
    args = ("serve", "--port", str(free_port())) if command == "serve" else ("worker",)
    bad = BAD_SETTINGS["bad text lookup"]
    status, out = run(tmp_path, args, bad)
    assert status not in (None, 0), out
    failed = [line for line in out.splitlines() if " ERROR " in line]
    assert (
        failed[0]
        .split(" ERROR ", 1)[1]
        .startswith(
            f"receiver.{'app start-up' if command == 'serve' else 'worker worker'} failed:"
            " configuration error: RECEIVER_FALLBACK_TEXT_LOOKUP: cannot import"
        )
    ), out
    assert all(len(line) < 400 for line in out.splitlines()), out


def test_store_down_at_start_is_one_short_line(tmp_path: Path) -> None:
    """PostgreSQL down at start-up: one line with the reason, no traceback, exit non-zero."""
    args = ("serve", "--port", str(free_port()))
    status, out = run(tmp_path, args, BAD_SETTINGS["PostgreSQL down"])
    assert status not in (None, 0), out
    assert "receiver.app start-up failed: cannot connect to PostgreSQL" in out
    assert "Traceback" not in out
    assert all(len(line) < 400 for line in out.splitlines())


def _terminal() -> None:
    """In the child: the pty is the controlling terminal, Ctrl-C sends SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may ignore it
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_ctrl_c_on_serve_in_a_terminal_exits_0(tmp_path: Path) -> None:
    """Ctrl-C typed in a real terminal stops `serve` cleanly: exit 0, no traceback."""
    port = free_port()
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve", "--port", str(port)],
        env=process_env(tmp_path, RECEIVER_LOG_FORMAT="text"),
        cwd=tmp_path,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
        preexec_fn=_terminal,
    )
    os.close(secondary)
    seen = bytearray()

    def read() -> str:
        while select.select([primary], [], [], 0.05)[0]:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen.extend(chunk)
        return seen.decode(errors="replace")

    try:
        wait_for(lambda: "Uvicorn running on" in read(), timeout=20)
        os.write(primary, b"\x03")  # the terminal turns it into SIGINT
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            read()
        assert proc.wait(timeout=1) == 0, read()
        read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "receiver stopped" in text
    assert "uvicorn.error" not in text  # its lines are logged as "uvicorn"
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text


@pytest.mark.parametrize(
    "args",
    [
        ("events", "list"),
        ("events", "show", "1"),
        ("dead-letters", "list"),
        ("resends", "list"),
        ("resends", "show", "1", "--account", "default"),
        ("db", "status"),
        ("doctor",),
    ],
)
def test_reading_commands_never_create_a_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Run where there is no database and without the webhook secret, a reading command
    fails naming the path it looked at, and creates no file."""
    env = process_env(tmp_path, RECEIVER_WEBHOOK_SECRETS="", RECEIVER_LOG_FORMAT="text")
    env["RECEIVER_DATABASE_URL"] = "sqlite:///receiver.db"
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert done.returncode == 1, done
    assert f"no database at {tmp_path / 'receiver.db'}" in done.stdout + done.stderr
    assert "RECEIVER_WEBHOOK_SECRETS" not in done.stderr
    assert list(tmp_path.iterdir()) == []
