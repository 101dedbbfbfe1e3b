"""Why a request body is a 400: the checks the fake applies (a subset of MTA's)."""

from __future__ import annotations

from typing import Any

from .records import WEBHOOK_EVENTS

__all__ = ["send_problem", "webhook_problem"]

MMS_LENGTH = 1550  # docs/mta.md "Sending": MMS up to 1550 characters


def send_problem(body: Any, max_sms_length: int | None) -> str | None:
    """Why a /send body is a 400, or None. The fake needs ``subscribers`` and some content:
    ``message``, ``image`` or ``templateId`` (docs/mta.md "Sending": at least one)."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    if not isinstance(body.get("subscribers"), list):
        return "subscribers must be an array"
    message = body.get("message")
    if message is None and (body.get("image") or body.get("templateId") is not None):
        return None
    if not isinstance(message, str):
        return "message, image or templateId is required; message must be a string"
    is_mms = bool(body.get("isMMS") or body.get("image"))
    if max_sms_length is not None and not is_mms and len(message) > max_sms_length:
        # docs/mta.md "Sending": SMS is 160 characters, longer gets 400.
        return f"SMS message is longer than {max_sms_length} characters"
    if is_mms and len(message) > MMS_LENGTH:
        return f"MMS message is longer than {MMS_LENGTH} characters"
    return None


def webhook_problem(body: Any, *, partial: bool) -> str | None:
    """Why a webhook registration (or, if ``partial``, a PATCH) body is a 400, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    if (not partial or "event" in body) and body.get("event") not in WEBHOOK_EVENTS:
        return f"event must be one of {sorted(WEBHOOK_EVENTS)}"
    if (not partial or "url" in body) and not (isinstance(body.get("url"), str) and body["url"]):
        return "url must be a non-empty string"
    if body.get("secret") is not None and not isinstance(body["secret"], str):
        return "secret must be a string"
    return None
