"""Packaging: every package is in the wheel, and the built-in handlers cannot be shadowed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from .conftest import ROOT


def test_every_receiver_package_is_listed_in_pyproject() -> None:
    """A folder added under receiver/ but missing from pyproject would be left out of the wheel."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "receiver").rglob("__init__.py")
    }
    assert listed == found | {"receiver_handlers"}


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_users_handlers_package_neither_replaces_nor_breaks_the_builtins(tmp_path: Path) -> None:
    """A package named `handlers` first on sys.path, even one that fails to import, leaves
    the built-in handlers loaded, and the user's own module under it still loads."""
    user = tmp_path / "handlers"
    user.mkdir()
    (user / "__init__.py").write_text("raise ImportError('a user package that is broken')\n")
    (tmp_path / "myhandlers").mkdir()
    (tmp_path / "myhandlers" / "__init__.py").write_text("")
    (tmp_path / "myhandlers" / "sms.py").write_text(
        "from receiver import Registry\n"
        "registry = Registry()\n"
        "@registry.on('message-reply')\n"
        "async def mine(event, ctx):\n"
        "    pass\n"
    )
    done = _run(
        "from receiver.dispatch.loader import build_registry\n"
        "r = build_registry(['myhandlers.sms'])\n"
        "names = sorted({h.__module__ for n in ('message-reply', 'delivery-status.delivery-failed')"
        " for _, h in r.handlers_for(n)})\n"
        "print(names)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "receiver_handlers.fallback" in done.stdout
    assert "myhandlers.sms" in done.stdout
