"""The overview's charts as geometry for inline SVG: drawn by the server, no script, no
library, nothing fetched (the dashboard's CSP allows no script at all).

Webhooks per hour, stacked by event type and, for delivery statuses, by outcome; resend
outcomes as one bar each. Templates only place the rectangles computed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..mta.events import DELIVERY_STATUS
from ..mta.statuses import DELIVERED, FAILURES, STATUS_NAMES
from ..store.reports import HourCount, OutcomeCount

WIDTH, HEIGHT = 480, 170  # the SVG's own units; it scales to its column
LEFT, BOTTOM, TOP = 30, 20, 10
RANGES = {"24h": 24, "7d": 7 * 24}
TYPE_COLORS = {
    "delivery-status": "#1f5fbf",
    "message-reply": "#1d7a3a",
    "message-send": "#8a5cc2",
    "number-opt-in": "#c76b00",
}
OTHER_COLOR = "#9aa5b1"
OUTCOME_COLORS = {
    "delivered": "#1d7a3a",
    "failed": "#b42318",
    "in progress": "#d39e00",
    "unknown": OTHER_COLOR,
}
_FAILED_NAMES = {f"{DELIVERY_STATUS}.{STATUS_NAMES[code]}" for code in FAILURES}
_DELIVERED_NAME = f"{DELIVERY_STATUS}.{STATUS_NAMES[DELIVERED]}"
RESEND_LABELS = {
    "sent": "sent",
    "delivered": "sent, then delivered",
    "cancelled": "called off",
    "skipped": "skipped",
    "unknown": "unknown: awaiting a decision",
    "failed": "failed",
    "rejected": "rejected by MTA",
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle, with the tooltip it shows."""

    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """A stacked bar chart: its bars, axis ticks, legend and largest total."""

    title: str
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, label) under the axis
    legend: tuple[tuple[str, str, int], ...]  # (label, color, total)
    peak: int

    @property
    def total(self) -> int:
        """Webhooks in the whole chart."""
        return sum(n for _, _, n in self.legend)


def outcome(name: str) -> str:
    """A delivery status event's outcome: delivered, failed, in progress or unknown."""
    if name == _DELIVERED_NAME:
        return "delivered"
    if name in _FAILED_NAMES:
        return "failed"
    return "unknown" if name.endswith(".unknown") else "in progress"


def webhook_charts(rows: Iterable[HourCount], now: float, hours: int) -> tuple[Chart, Chart]:
    """Webhooks per hour over the last ``hours``: by event type, and delivery statuses by
    outcome."""
    first = int(now) // 3600 - hours + 1
    by_type: dict[int, dict[str, int]] = {}
    by_outcome: dict[int, dict[str, int]] = {}
    for row in rows:
        if row.hour < first:
            continue
        kind = row.type if row.type in TYPE_COLORS else "other"
        by_type.setdefault(row.hour, {}).setdefault(kind, 0)
        by_type[row.hour][kind] += row.count
        if row.type == DELIVERY_STATUS:
            result = outcome(row.name)
            by_outcome.setdefault(row.hour, {}).setdefault(result, 0)
            by_outcome[row.hour][result] += row.count
    return (
        stacked("Webhooks per hour, by event type", by_type, first, hours, TYPE_COLORS),
        stacked("Delivery statuses per hour, by outcome", by_outcome, first, hours, OUTCOME_COLORS),
    )


def stacked(
    title: str,
    counts: Mapping[int, Mapping[str, int]],
    first: int,
    hours: int,
    colors: Mapping[str, str],
) -> Chart:
    """Bars of ``counts`` (hour → series → count), one per hour from ``first``."""
    series = [*colors, "other"]
    peak = max((sum(c.values()) for c in counts.values()), default=0)
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / hours
    bars = []
    for index in range(hours):
        hour = first + index
        y = float(HEIGHT - BOTTOM)
        for name in series:
            n = counts.get(hour, {}).get(name, 0)
            if not n:
                continue
            height = plot_h * n / peak
            y -= height
            when = _hour_label(hour, "%Y-%m-%d %H:00Z")
            bars.append(
                Bar(
                    round(LEFT + index * step + step * 0.1, 2),
                    round(y, 2),
                    round(max(step * 0.8, 1.0), 2),
                    round(height, 2),
                    colors.get(name, OTHER_COLOR),
                    f"{when}: {n} {name}",
                )
            )
    every = 6 if hours <= 24 else 24
    fmt = "%H:00" if hours <= 24 else "%a %d"
    ticks = tuple(
        (round(LEFT + i * step, 2), _hour_label(first + i, fmt))
        for i in range(hours)
        if (first + i) % every == 0
    )
    totals = {name: sum(c.get(name, 0) for c in counts.values()) for name in series}
    legend = tuple(
        (name, colors.get(name, OTHER_COLOR), n)
        for name, n in totals.items()
        if n or name in colors
    )
    return Chart(title, tuple(bars), ticks, legend, peak)


RESEND_COLORS = {
    "sent": "#1d7a3a",
    "delivered": "#1d7a3a",
    "unknown": "#b42318",
    "failed": "#b42318",
    "rejected": "#b42318",
    "cancelled": "#5f6b76",
    "skipped": OTHER_COLOR,
    "scheduled": "#d39e00",
}


def resend_rows(rows: Iterable[OutcomeCount]) -> list[tuple[str, int, float, str]]:
    """Resend outcomes as (label, count, share of the largest in %, color) rows: skipped
    and called-off ones by reason."""
    merged: dict[tuple[str, str], int] = {}
    for row in rows:
        label = RESEND_LABELS.get(row.state, "in progress")
        if row.state in ("skipped", "cancelled") and row.reason:
            label = f"{label}: {row.reason.replace('_', ' ')}"
        key = (label, row.state if row.state in RESEND_LABELS else "scheduled")
        merged[key] = merged.get(key, 0) + row.count
    peak = max(merged.values(), default=0)
    return [
        (label, n, round(100 * n / peak, 1), RESEND_COLORS[state])
        for (label, state), n in sorted(merged.items(), key=lambda item: -item[1])
    ]


def _hour_label(hour: int, fmt: str) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime(fmt)
