"""Errors raised by mta-receiver.

    ReceiverError
    ├── ConfigError            settings are missing or invalid; the service refuses to start
    ├── HandlerLoadError       a RECEIVER_HANDLERS import string cannot be loaded
    ├── VerificationError      a webhook's signature is missing, malformed or wrong
    ├── PayloadError           an authentic body is not a JSON object we can read
    ├── StoreError             the store failed; wraps the driver's error
    │   └── StoreUnavailable   the store cannot be reached or written at all
    └── RetryLater             raised by a handler to be run again after a delay

Duplicates are results (``IngestResult.duplicate``), never exceptions.
"""

from __future__ import annotations


class ReceiverError(Exception):
    """mta-receiver failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(ReceiverError):
    """The configuration is invalid."""


class HandlerLoadError(ConfigError):
    """A custom handler module could not be loaded."""


class VerificationError(ReceiverError):
    """The webhook signature did not verify."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"signature verification failed: {reason}")
        self.reason = reason


class PayloadError(ReceiverError):
    """The webhook body is not a JSON object."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"unreadable payload: {reason}")
        self.reason = reason


class StoreError(ReceiverError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be written."""


class RetryLater(ReceiverError):
    """The handler asked to be run again later."""

    def __init__(self, delay: float = 60.0, reason: str = "retry requested") -> None:
        super().__init__(f"{reason} (in {delay:g}s)")
        self.delay = delay
        self.reason = reason
