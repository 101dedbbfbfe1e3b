"""A ``doctor`` check's result and how the checks are printed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check, with the fix when it is not OK."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def report(checks: list[Check], as_json: bool) -> None:
    """Print the checks: one line each, the fix indented below."""
    if as_json:
        print(json.dumps([asdict(c) for c in checks]))
        return
    for c in checks:
        print(f"[{c.status.upper():>4}] {c.name}: {c.detail}")
        if c.fix:
            print(f"       fix: {c.fix}")
