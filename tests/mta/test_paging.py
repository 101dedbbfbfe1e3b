"""Paging MTA's lists without knowing their base, when MTA does not echo ``page``."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.mta.paging import all_rows


class Pages:
    """A list of 5 rows in pages of 3 that never echoes ``page``, 0- or 1-based."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.asked: list[int | None] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        page = (kwargs.get("params") or {}).get("page")
        self.asked.append(page)
        index = 0 if page is None else page - self.first
        rows = [{"id": n} for n in range(1, 6)][index * 3 : index * 3 + 3]
        return {"rows": rows}


@pytest.mark.parametrize("first", [0, 1])
async def test_every_row_is_read_whatever_the_base_without_an_echoed_page(first: int) -> None:
    """A 1-based list that does not echo ``page`` repeats the first page on our page 1:
    the walk tries the next page once instead of stopping with a third of the rows."""
    pages = Pages(first)
    rows = await all_rows(pages, "webhooks")
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
