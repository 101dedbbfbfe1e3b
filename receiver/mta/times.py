"""When something happened, as MTA's payloads spell it: read tolerantly.

MTA documents a ``date`` format per field without one spelling (docs/mta.md, "Payload
versions and formats"); integrations see epoch seconds, epoch milliseconds and ISO 8601.
"""

from __future__ import annotations

import datetime as dt


def parse_time(value: object) -> float | None:
    """Epoch seconds from epoch seconds or milliseconds, or an ISO 8601 string (UTC when
    it names no zone); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        return seconds / 1000 if seconds > 1e11 else seconds  # ms past 1973 in seconds
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return parse_time(float(text))
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
