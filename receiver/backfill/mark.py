"""What handlers read of a backfilled event (no HTTP or store imports: handlers use it)."""

from __future__ import annotations

from collections.abc import Mapping

from ..mta.events import BACKFILL_MARK, Event

__all__ = ["mta_word", "occurred_at"]


def occurred_at(event: Event) -> float:
    """When the status happened: MTA's date for a backfilled one, else its receipt."""
    mark = event.raw.get(BACKFILL_MARK)
    when = mark.get("occurredAt") if isinstance(mark, Mapping) else None
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    return event.received_at


def mta_word(event: Event) -> str | None:
    """MTA's status word of a backfilled event (``undeliverable``...), or None."""
    mark = event.raw.get(BACKFILL_MARK)
    word = mark.get("mtaStatus") if isinstance(mark, Mapping) else None
    return word if isinstance(word, str) else None
