"""Reading the times MTA's payloads carry, in every spelling integrations see."""

from __future__ import annotations

import pytest

from receiver.mta.times import parse_time


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1733400000, 1733400000.0),
        (1733400000123, 1733400000.123),
        ("1733400000", 1733400000.0),
        ("2024-12-05T12:00:00Z", 1733400000.0),
        ("2024-12-05T13:00:00+01:00", 1733400000.0),
        ("2024-12-05 12:00:00", 1733400000.0),
        ("yesterday", None),
        (True, None),
        (None, None),
    ],
)
def test_times_are_read_in_every_spelling_integrations_see(
    value: object, seconds: float | None
) -> None:
    """Epoch seconds or milliseconds, ISO 8601 with or without a zone (UTC); else None."""
    assert parse_time(value) == (pytest.approx(seconds) if seconds is not None else None)
