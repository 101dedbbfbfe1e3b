"""The README's walkthrough works as written: its handler, copied verbatim, runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, Process, free_port, process_env, wait_for

README = ROOT / "README.md"
SCRIPT = Path(sys.executable).parent / "mta-receiver"  # the console script, not python -m


def block(marker: str) -> str:
    """The README's fenced code block whose first line is ``marker``."""
    for code in re.findall(r"```\w*\n(.*?)```", README.read_text(), re.S):
        if code.startswith(marker):
            return str(code)
    raise AssertionError(f"no block starting {marker!r} in the README")


def test_readme_is_a_front_door() -> None:
    """At most 20 KB, with the quick start's steps and the troubleshooting section."""
    text = README.read_text()
    assert len(text.encode()) <= 20_000
    for step in (
        "mta-receiver trigger",
        "mta-receiver events list",
        "/admin/",
        "fake-mta",
        "RECEIVER_HANDLERS=myapp.sms",
        "## Troubleshooting",
        "openssl dgst",
    ):
        assert step in text, step


def test_readme_handler_runs_from_the_current_directory(tmp_path: Path) -> None:
    """`myapp/sms.py` from the README, `RECEIVER_HANDLERS=myapp.sms` and the console
    script run in that directory: the handler loads and handles a triggered reply."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "sms.py").write_text(block("# myapp/sms.py"))
    env = process_env(tmp_path, RECEIVER_HANDLERS="myapp.sms", RECEIVER_LOG_FORMAT="text")
    del env["PYTHONPATH"]  # an empty entry there would put the current directory on the path
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = Process(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(process.healthy, timeout=20, interval=0.05)
        done = subprocess.run(
            [str(SCRIPT), "trigger", "message-reply", "--url", f"{process.url}/webhooks/mta"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done
        wait_for(lambda: "reply of 17 characters" in process.output(), timeout=20)
    finally:
        process.kill()
