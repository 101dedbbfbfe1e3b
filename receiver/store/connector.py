"""The statement runner each adapter is, for the repositories inside ``receiver/store/``.

Only code in this package holds one: callers outside get the typed operations of the
`Store` port and its repositories, never a way to run a statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Connector(Protocol):
    """Runs one statement with ``?`` placeholders (PostgreSQL's adapter numbers them)."""

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read (a reader connection where the adapter has one)."""
        ...

    async def fetch_write(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows a writing statement returns (``... RETURNING``)."""
        ...

    async def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        """Run a writing statement; the rows it changed."""
        ...


def named(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as ``{column: value}``: rows are mapped by name, never by position."""
    return dict(zip(columns, row, strict=True))
