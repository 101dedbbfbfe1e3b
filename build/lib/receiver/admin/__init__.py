"""The operator dashboard at ``/admin`` (off unless ``RECEIVER_ADMIN_PASSWORD`` is set)."""

from __future__ import annotations

from .app import SESSION_COOKIE, create_admin

__all__ = ["SESSION_COOKIE", "create_admin"]
