"""Reading every row of one of MTA's lists, whatever page MTA counts from.

MTA documents ``page``/``pageSize`` but not their base; its one hand-written example
answers a parameterless ``GET /webhooks`` with ``"page": 0, "pageSize": 25`` (docs/mta.md,
"Lists and paging"). So the first call sends no paging parameters, later calls follow the
echoed ``page`` (+1) and ``pageSize``, and the walk stops on an empty page, on ``total``
reached, or on a page holding only rows already seen (a server that ignored ``page``);
the page count is capped and rows are deduplicated by ``id``. This is right for a 0-based
and a 1-based MTA alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

log = logging.getLogger("receiver.mta")

MAX_PAGES = 100
"""The most pages one walk reads (MTA's default page holds 25 rows)."""


class Lister(Protocol):
    """What paging needs of the client: one GET that answers MTA's ``data`` object."""

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call; the answer's ``data`` object."""
        ...


async def all_rows(
    client: Lister, path: str, *, max_pages: int = MAX_PAGES
) -> list[dict[str, Any]]:
    """Every row of the list at ``path``, each once, oldest page first."""
    found: list[dict[str, Any]] = []
    async for rows in pages(client, path, max_pages=max_pages):
        found += rows
    return found


async def pages(
    client: Lister,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    max_pages: int = MAX_PAGES,
    odd: bool = False,
) -> AsyncIterator[list[Any]]:
    """The rows of the list at ``path`` page by page, each row once; ``query`` (filters,
    say) goes with every request, the paging parameters are added as above. ``odd``:
    rows that are not objects are passed on too (for the caller to count), not dropped."""
    seen: set[str] = set()
    collected = 0
    params: dict[str, int] = {}
    skipped = False
    for _ in range(max_pages):
        data = await client.request("GET", path, params={**(query or {}), **params} or None)
        rows = data.get("rows")
        rows = rows if isinstance(rows, list) else []
        fresh = []
        for row in rows:
            key = _key(row)
            if key is not None and key not in seen:
                seen.add(key)
                fresh.append(row)
            elif key is None and odd:
                fresh.append(row)
        collected += len(fresh)
        if fresh:
            yield fresh
        total = _int(data.get("total"))
        page = _int(data.get("page"))
        if not fresh and rows and page is None and params and not skipped:
            # Our page 1 repeated the parameterless first page and MTA did not say which
            # page it sent: a 1-based list. Ask for the next page once before stopping.
            skipped = True
            log.info(
                "GET /%s: page %d repeated the first page; trying the next", path, params["page"]
            )
            params["page"] += 1
            continue
        if not fresh or (total is not None and collected >= total):
            return
        if page is None:  # not echoed: the page we asked for, or the documented first (0)
            page = params.get("page", 0)
        params = {"page": page + 1}
        size = _int(data.get("pageSize"))
        if size is not None and size > 0:
            params["pageSize"] = size
    log.warning("GET /%s: stopped after %d pages; the list may be incomplete", path, max_pages)


def _key(row: object) -> str | None:
    if not isinstance(row, dict):
        return None
    ident = row.get("id")
    if ident is not None and not isinstance(ident, (dict, list)):
        return f"id:{ident}"
    return "row:" + json.dumps(row, sort_keys=True, default=str)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
