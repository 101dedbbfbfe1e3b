"""MTA-shaped answers: the JSON error body and the request id every answer carries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.responses import JSONResponse

__all__ = ["mta_error", "new_request_id"]

# docs/mta.md "Limits and errors": errors carry {httpCode, message, timestamp, type, name,
# requestId}. Only the 400 pair is documented ("bad_request_error"/"MTABadRequestError");
# the others follow the same pattern and are guesses.
_KINDS: Mapping[int, tuple[str, str]] = {
    400: ("bad_request_error", "MTABadRequestError"),
    401: ("unauthorized_error", "MTAUnauthorizedError"),
    404: ("not_found_error", "MTANotFoundError"),
    409: ("conflict_error", "MTAConflictError"),
    429: ("rate_limit_error", "MTARateLimitError"),
    500: ("internal_server_error", "MTAInternalServerError"),
}


def new_request_id() -> str:
    """A fresh id for ``X-Request-ID`` and the error body's ``requestId``."""
    return str(uuid.uuid4())


def mta_error(
    status: int, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An MTA error answer with ``status``, the documented body and ``X-Request-ID``."""
    kind, name = _KINDS.get(status, ("error", "MTAError"))
    body = {
        "httpCode": status,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "type": kind,
        "name": name,
        "requestId": request_id,
    }
    return JSONResponse(body, status, headers={**(headers or {}), "X-Request-ID": request_id})
