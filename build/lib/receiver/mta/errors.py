"""Errors of MTA's API, typed by what the caller may do next.

MTAError                 MTA refused or could not be reached; keeps ``request_id``
├── MTARejected          a definite 4xx (not 429): final, sending again won't help
├── MTAUnavailable       5xx or no connection after our retries: nothing was sent
├── MTAOutcomeUnknown    the request may have reached MTA: never resend blindly
└── SendWithdrawn        the caller called the send off before it went out: nothing sent
"""

from __future__ import annotations

from typing import Any

from ..errors import ReceiverError


class MTAError(ReceiverError):
    """The MTA API call failed."""

    def __init__(
        self,
        message: str | None = None,
        *,
        http_code: int | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_code = http_code
        self.request_id = request_id
        self.body = body or {}

    @classmethod
    def from_response(cls, status: int, body: object, header_request_id: str | None) -> MTAError:
        """Read MTA's error body ``{httpCode, message, type, name, requestId}`` tolerantly."""
        fields = body if isinstance(body, dict) else {}
        text = fields.get("message") if isinstance(fields.get("message"), str) else None
        request_id = fields.get("requestId") or header_request_id
        return cls(
            f"MTA answered {status}: {text or 'no message'}",
            http_code=status,
            request_id=str(request_id) if request_id else None,
            body=fields,
        )


class MTARejected(MTAError):
    """MTA rejected the request for good."""


class MTAUnavailable(MTAError):
    """MTA could not take the request; it was not sent."""


class MTAOutcomeUnknown(MTAError):
    """The request may or may not have reached MTA."""


class SendWithdrawn(MTAError):
    """The caller's ``ready`` check said no before an attempt: nothing was sent."""
