"""Helpers the operator commands share: durations, output (table or JSON), the store.

Not a command module (it is not listed in ``MODULES``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import ConfigError, StoreUnavailable
from ..logs import mask_number, redact_phone
from ..settings import Secret, Settings
from ..store import MAX_ID, Store, create_store, missing_database
from ..store.operator import EventFilter, EventRow

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(value: str) -> float:
    """``90``, ``15m``, ``1h``, ``30d``, ``2w`` to seconds (an ``argparse`` type)."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration like 15m, 1h or 30d: {value!r}")
    return float(match[1]) * _UNITS[match[2]]


duration.__name__ = "duration"  # argparse names the type in its error message


def row_id(value: str) -> int:
    """An event or registration id (an ``argparse`` type): a whole number the database
    can hold, so a mistyped 30-digit id is a usage error, not an overflow."""
    number = int(value)
    if not 0 <= number <= MAX_ID:
        raise ValueError(f"not an id: {value!r}")
    return number


row_id.__name__ = "id"


def status_code(value: str) -> int:
    """An MTA delivery status code (an ``argparse`` type)."""
    number = int(value)
    if not 0 <= number <= 2**31 - 1:
        raise ValueError(f"not a status code: {value!r}")
    return number


status_code.__name__ = "status code"


def add_json(parser: Any) -> None:
    """The ``--json`` flag every reading command takes."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def timestamp(value: float | None) -> str:
    """A UNIX time as ISO 8601 UTC, to the second (``-`` for None)."""
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Rows as a JSON array, or as an aligned table of ``columns`` (``-`` for None)."""
    if as_json:
        print(json.dumps(list(rows), default=str))
        return
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def add_numbers(parser: Any) -> None:
    """The ``--show-numbers`` flag of every command that prints phone numbers."""
    parser.add_argument(
        "--show-numbers",
        action="store_true",
        help="print phone numbers in full (masked like ***67 by default, as in the logs)",
    )


def mask_numbers(rows: list[dict[str, Any]], show: bool) -> list[dict[str, Any]]:
    """``rows`` with their ``phone`` masked as the logs and the dashboard mask it."""
    if show:
        return rows
    return [
        {**row, "phone": redact_phone(row.get("phone"))} if "phone" in row else row for row in rows
    ]


def mask_in_text(text: str, phone: str | None, show: bool) -> str:
    """``text`` (a raw body) with ``phone`` masked, unless ``show``."""
    return text if show else mask_number(text, phone)


def print_page(
    rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool, limit: int | None
) -> None:
    """``rows`` (fetched one past ``limit``) cut to ``limit``; a cut is said on stderr,
    with how to see more, so a table never looks complete when it is not."""
    more = limit is not None and len(rows) > limit
    print_rows(rows[:limit] if more else rows, columns, as_json)
    if more:
        print(
            f"(only the first {limit} shown: more match; --limit {max(limit or 0, 1) * 10}"
            " or narrower filters to see them)",
            file=sys.stderr,
        )


def confirm(question: str, yes: bool) -> bool:
    """``yes`` (``--yes``), or the operator's answer; without a terminal to ask, a
    `ConfigError`: a script must say ``--yes`` rather than change things unasked."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(f"{question}: pass --yes to confirm (no terminal to ask)")
    answer = input(f"{question}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def progress(message: str) -> None:
    """A progress line on stderr, so it never mixes with --json on stdout."""
    print(message, file=sys.stderr, flush=True)


def print_value(value: Any, as_json: bool) -> None:
    """One mapping as JSON or as ``key: value`` lines."""
    if as_json:
        print(json.dumps(value, default=str))
        return
    for key, item in value.items():
        print(f"{key}: {_cell(item)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return timestamp(value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


READ_ONLY_SECRET = "unused-by-reading-commands"  # noqa: S105 - a placeholder, verifies nothing
"""Stands in for the webhook secret in commands that only read the store: they verify no
webhook, and an operator listing events should not need the secret in their shell."""


def load_settings(*, read_only: bool = False) -> Settings:
    """Settings from the environment; a `ConfigError` becomes exit status 2 in the CLI.
    ``read_only``: no webhook secret is needed."""
    if read_only:
        return Settings.from_env(webhook_secrets=(Secret(READ_ONLY_SECRET),))
    return Settings.from_env()


def with_store(
    settings: Settings,
    work: Callable[[Store], Awaitable[T]],
    *,
    migrate: bool = True,
    read_only: bool = False,
) -> T:
    """Open the configured store, run ``work(store)`` on a fresh event loop, close it.

    ``read_only``: the store is neither created nor migrated; a missing SQLite file is
    an error naming the path (run elsewhere, a relative URL names another file)."""
    if read_only:
        migrate = False
        if (path := missing_database(settings.database_url)) is not None:
            raise StoreUnavailable(
                f"no database at {path} (RECEIVER_DATABASE_URL={settings.database_url};"
                " a relative path is relative to the current directory)"
            )

    async def run() -> T:
        store = create_store(settings.database_url)
        await store.open(migrate=migrate)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def require(condition: bool, message: str) -> None:
    """Raise a `ConfigError` (exit 2) when a command's arguments do not fit together."""
    if not condition:
        raise ConfigError(message)


PAGE = 500
"""Events read or changed per round trip when a command works through many."""


def event_filter(
    *,
    type: str | None = None,
    status: int | None = None,
    number: str | None = None,
    since: float | None = None,
    state: str | None = None,
    account: str | None = None,
    limit: int = 50,
) -> EventFilter:
    """An `EventFilter` from CLI values (``since`` in seconds back from now)."""
    start = None if since is None else time.time() - since
    return EventFilter(
        type=type,
        status=status,
        number=number,
        since=start,
        state=state,
        account=account,
        limit=limit,
    )


async def select_events(
    store: Store, filters: EventFilter, limit: int | None
) -> list[dict[str, Any]]:
    """Events matching ``filters``, newest first, as dicts; ``limit`` None pages through
    all of them (`Operator.list_events` answers at most 500 at a time)."""
    found: list[EventRow] = []
    while limit is None or len(found) < limit:
        page = min(500, PAGE if limit is None else limit - len(found))
        before = found[-1].id if found else None
        rows = await store.operator.list_events(
            dataclasses.replace(filters, limit=page, before_id=before)
        )
        found += rows
        if len(rows) < page:
            break
    return [dataclasses.asdict(row) for row in found]
