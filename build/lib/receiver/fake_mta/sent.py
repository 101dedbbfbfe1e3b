"""What the fake MTA serves under ``/sent-messages/{id}``: sent messages and deliveries.

docs/mta.md ("Reading back"): ``GET /sent-messages/{outboundId}`` answers the envelope
with ``data`` = ``{id, recipients, message, url}``; ``/delivery-report``'s answer fields
are undocumented, so the fake picks a plain shape (``data.rows`` of ``{number, status,
statusCode}``, the latest status per recipient) that the receiver must read tolerantly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..mta.statuses import STATUS_NAMES

__all__ = ["SentLog"]


class SentLog:
    """Sent messages by id and the latest delivery status of each recipient; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, dict[str, Any]] = {}
        self._statuses: dict[int, dict[str, int]] = {}

    def add(self, message_id: int, recipients: Sequence[str], message: str | None) -> None:
        """Know a message: one the fake sent, or one a test says MTA sent earlier."""
        with self._lock:
            self._messages[message_id] = {
                "id": message_id,
                "recipients": [str(r) for r in recipients],
                "message": message or "",
                "url": "",
            }

    def status(self, message_id: int, number: str, status: int) -> None:
        """Record a delivery status of one recipient (what a played webhook said)."""
        with self._lock:
            self._statuses.setdefault(message_id, {})[number] = int(status)

    def message(self, message_id: int) -> dict[str, Any] | None:
        """``data`` of ``GET /sent-messages/{id}``, or None (a 404)."""
        with self._lock:
            found = self._messages.get(message_id)
            return dict(found) if found is not None else None

    def report(self, message_id: int) -> dict[str, Any] | None:
        """``data`` of ``GET /sent-messages/{id}/delivery-report``, or None (a 404)."""
        with self._lock:
            if message_id not in self._messages and message_id not in self._statuses:
                return None
            rows = [
                {"number": n, "status": STATUS_NAMES.get(s, "unknown"), "statusCode": s}
                for n, s in self._statuses.get(message_id, {}).items()
            ]
            return {"rows": rows, "total": len(rows)}

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._messages.clear()
            self._statuses.clear()
