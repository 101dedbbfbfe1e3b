"""What the fake MTA serves under ``/sent-messages/{id}`` and ``/deliveries``.

docs/mta.md ("Reading back"): ``GET /sent-messages/{outboundId}`` answers the envelope
with ``data`` = ``{id, recipients, message, url}``; ``/delivery-report``'s answer fields
are undocumented, so the fake picks a plain shape (``data.rows`` of ``{number, status,
statusCode}``, the latest status per recipient) that the receiver must read tolerantly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..mta.statuses import STATUS_NAMES
from .deliveries import delivery_rows

__all__ = ["SentLog"]


class SentLog:
    """Sent messages by id and the latest delivery status of each recipient; thread-safe.

    Each message belongs to the account (API key) that sent it: another account's key
    reads it as not found, as MTA's per-account records do. ``owner=None`` reads all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, dict[str, Any]] = {}
        self._statuses: dict[int, dict[str, tuple[int, float]]] = {}
        self._external_ids: dict[int, str | None] = {}
        self._owners: dict[int, str] = {}

    def _visible(self, message_id: int, owner: str | None) -> bool:
        found = self._owners.get(message_id)
        return owner is None or found is None or found == owner

    def add(
        self,
        message_id: int,
        recipients: Sequence[str],
        message: str | None,
        external_id: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Know a message: one the fake sent, or one a test says MTA sent earlier (of
        the account whose key is ``owner``; None: of every account)."""
        with self._lock:
            if owner is not None:
                self._owners[message_id] = owner
            self._external_ids[message_id] = external_id
            self._messages[message_id] = {
                "id": message_id,
                "recipients": [str(r) for r in recipients],
                "message": message or "",
                "url": "",
            }

    def status(self, message_id: int, number: str, status: int, at: float | None = None) -> None:
        """Record a delivery status of one recipient (what a played webhook said), at
        ``at`` (wall-clock seconds; now by default)."""
        when = time.time() if at is None else at
        with self._lock:
            self._statuses.setdefault(message_id, {})[number] = (int(status), when)

    def deliveries(
        self, start: float | None, end: float | None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """The rows of ``GET /deliveries`` between ``start`` and ``end``, oldest first."""
        with self._lock:
            latest = {
                (message_id, number): found
                for message_id, by_number in self._statuses.items()
                for number, found in by_number.items()
                if self._visible(message_id, owner)
            }
            return delivery_rows(latest, dict(self._external_ids), start, end)

    def message(self, message_id: int, owner: str | None = None) -> dict[str, Any] | None:
        """``data`` of ``GET /sent-messages/{id}``, or None (a 404)."""
        with self._lock:
            found = self._messages.get(message_id) if self._visible(message_id, owner) else None
            return dict(found) if found is not None else None

    def report(self, message_id: int, owner: str | None = None) -> dict[str, Any] | None:
        """``data`` of ``GET /sent-messages/{id}/delivery-report``, or None (a 404)."""
        with self._lock:
            if message_id not in self._messages and message_id not in self._statuses:
                return None
            if not self._visible(message_id, owner):
                return None
            rows = [
                {"number": n, "status": STATUS_NAMES.get(s, "unknown"), "statusCode": s}
                for n, (s, _) in self._statuses.get(message_id, {}).items()
            ]
            return {"rows": rows, "total": len(rows)}

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._messages.clear()
            self._statuses.clear()
            self._external_ids.clear()
            self._owners.clear()
