"""Logging: one line per fact, the event's identity on each, phone numbers redacted.

JSON lines when stderr is not a terminal (production), readable text on a terminal;
``RECEIVER_LOG_FORMAT`` forces either. Secrets are never logged: `Secret` hides itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mta.events import Event
    from .settings import Settings

QUIET_LOGGERS = ("aiosqlite", "asyncpg", "httpcore", "hpack")
_FIELDS = (
    "event_id",
    "event",
    "account",
    "message_id",
    "phone",
    "request_id",
    "outcome",
    "client",
)
FIELD_LIMIT = 100
"""Characters of an identity field a line keeps (a client address comes from a proxy's
header, a message id from the payload)."""
_LABEL = re.compile(r"[A-Za-z_-]{1,32}")


def redact_phone(number: str | None, redact: bool = True) -> str | None:
    """``+15551234567`` → ``***67``: enough to tell numbers apart in a log, no more."""
    if number is None or not redact:
        return number
    return "***" + number[-2:] if len(number) > 4 else "***"


_PHONE_LIKE = r"\+?\(?\d[\d ().\-]{5,}\d"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_QUOTED_PHONE = re.compile(f'"({_PHONE_LIKE})"')
_ANY_PHONE = re.compile(f"(?<![\\w.]){_PHONE_LIKE}(?![\\w.])")


def _masked_run(match: re.Match[str]) -> str:
    run = match.group(match.lastindex or 0)
    digits = re.sub(r"\D", "", run)
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(run):  # E.164 has 7 to 15 digits
        return match.group(0)
    return match.group(0).replace(run, "***" + digits[-2:])


def mask_number(text: str, phone: str | None) -> str:
    """``text`` (a raw body) with phone numbers masked: ``phone`` in its E.164 and
    national spellings, every quoted value spelled like a phone number (``"(555)
    555-0199"``), and, when the event has no number of its own (a quarantined body),
    every such run of 7 to 15 digits, quoted or not."""
    if phone and len(phone) >= 5:
        spellings = {phone, phone.lstrip("+")}
        if phone.startswith("+1"):
            spellings.add(phone[2:])  # MTA may send North American numbers national
        for spelling in sorted(spellings, key=len, reverse=True):
            text = text.replace(spelling, redact_phone(phone) or "***")
    text = _QUOTED_PHONE.sub(_masked_run, text)
    if not phone:
        text = _ANY_PHONE.sub(_masked_run, text)
    return text


def label(value: object, unknown: str = "unrecognized") -> str:
    """``value`` when it is a short word (letters, ``_``, ``-``), else ``unknown``: for
    undocumented payload fields a line names, which could otherwise carry a phone number,
    a forged log line or a whole object into the log."""
    return value if isinstance(value, str) and _LABEL.fullmatch(value) else unknown


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {}
    for name in _FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, str) and len(value) > FIELD_LIMIT:
            value = value[:FIELD_LIMIT] + "..."
        if value is not None:
            fields[name] = value
    return fields


Masks = tuple[tuple[str, str], ...]
"""(value, what shows instead) pairs: the event's number and text wherever they appear."""


def masks(event: Event, redact: bool = True) -> Masks:
    """What to hide of ``event`` in free text: its number and its message text, which a
    handler's exception or log line may quote (short values are left: they would mask
    innocent text)."""
    if not redact:
        return ()
    found: dict[str, str] = {}
    for value, mask in (
        (event.text, f"<text, {len(event.text or '')} characters>"),
        (event.phone, redact_phone(event.phone) or "***"),
    ):
        if value and len(value) >= 5:
            # As written, as repr() and %r spell it, and with line breaks escaped.
            for spelling in (value, repr(value)[1:-1], _one_line(value)):
                found.setdefault(spelling, mask)
    # Longest first: a text that quotes the number is masked whole.
    return tuple(sorted(found.items(), key=lambda pair: -len(pair[0])))


def scrub(text: str, hidden: Masks) -> str:
    """``text`` with every masked value replaced."""
    for value, mask in hidden:
        if value in text:
            text = text.replace(value, mask)
    return text


class EventLog(logging.LoggerAdapter[logging.Logger]):
    """A logger that stamps every line with one event's identity, and has the formatters
    mask the event's number and text wherever a line quotes them (a handler's message or
    exception)."""

    def __init__(self, logger: logging.Logger, event: Event, redact: bool = True) -> None:
        self.masks = masks(event, redact)
        """What `scrub` hides of this event (its number and text), for other free text."""
        super().__init__(
            logger,
            {
                "event_id": event.id,
                "event": event.name,
                # Message ids repeat across accounts: a line names whose it is.
                "account": event.account,
                "message_id": event.message_id,
                "phone": redact_phone(event.phone, redact),
                "masks": self.masks,
            },
        )

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the identity fields when a line has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _scrubbed(record.getMessage(), record),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = _scrubbed(self.formatException(record.exc_info), record)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for a terminal. Line breaks in the
    message and fields are escaped, so no value can forge a line of its own (a traceback
    still follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        # Once over the whole line, traceback included (the masks hold the escaped
        # spellings of what formatMessage escapes).
        return _scrubbed(super().format(record), record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = _one_line(super().formatMessage(record))
        pairs = " ".join(f"{name}={_one_line(str(v))}" for name, v in _fields(record).items())
        return f"{message} {pairs}" if pairs else message


def _scrubbed(text: str, record: logging.LogRecord) -> str:
    hidden = getattr(record, "masks", None)
    return scrub(text, hidden) if hidden else text


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _rename_uvicorn(record: logging.LogRecord) -> bool:
    """uvicorn logs its life ("Started server process") under ``uvicorn.error``: an
    operator grepping for errors should not find every start-up line."""
    if record.name == "uvicorn.error":
        record.name = "uvicorn"
    return True


def configure_logging(settings: Settings) -> None:
    """Install the formatter ``settings`` ask for on the root logger."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    handler = logging.StreamHandler()
    handler.addFilter(_rename_uvicorn)
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # httpx logs every request at INFO; the MTA client logs what matters itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # At DEBUG, aiosqlite logs every statement with its parameters (phone numbers, texts)
    # and httpcore every connection step: never below INFO, whatever RECEIVER_LOG_LEVEL.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
