"""The dispatch core stays HTTP-free: importing it loads no HTTP client and no operator code."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "httpx",
    "starlette",
    "uvicorn",
    "jinja2",
    "receiver.admin",
    "receiver.cli",
    "receiver.web.intake",
    "receiver.fallback",
    "receiver.operations",
    "receiver.fake_mta",
)


def test_importing_the_dispatch_core_loads_no_http_client_and_no_operator_code() -> None:
    """`import receiver.dispatch` (registry, loader, context, dispatcher, worker) pulls in
    neither httpx nor the dashboard, the CLI, the fallback feature or operator queries."""
    code = (
        "import sys, receiver.dispatch\n"
        "import receiver.dispatch.worker, receiver.dispatch.dispatcher, receiver.dispatch.loader\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = done.stdout.split()
    assert "receiver.dispatch.worker" in loaded
    offending = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert offending == []
