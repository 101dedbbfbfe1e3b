"""Logs of a full run (intake, handlers, resend through the fake MTA, failures) at DEBUG:
no secret, no API key, no phone digits, no message text; request ids on intake failures."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver import Context, Event, Registry
from receiver.dispatch.registry import handler_name
from receiver.logs import (
    FIELD_LIMIT,
    QUIET_LOGGERS,
    EventLog,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    label,
    mask_number,
)

from .conftest import SECRET, delivery, encode, make_settings, running, wait_for
from .fallback.test_fallback import API_KEY, PHONE, fallback

TEXT = "Your code: 42"
# A text that quotes the number and spans two lines (masked whole, in every spelling).
QUOTING = "call me at +15551230000 about my diagnosis\nsecond line"


class ListHandler(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def service_logging(tmp_path: Path) -> Iterator[ListHandler]:
    """Logging as ``serve`` sets it up with RECEIVER_LOG_LEVEL=DEBUG; records kept."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, "httpx")}
    configure_logging(make_settings(tmp_path, log_level="DEBUG", log_format="json"))
    kept = ListHandler()
    root.addHandler(kept)
    try:
        yield kept
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


def test_logs_hold_no_secrets_numbers_or_text(tmp_path: Path) -> None:
    """Every line, as JSON and as text, is free of secrets, phone digits and message text."""
    with service_logging(tmp_path) as kept, fallback(tmp_path) as s:
        mid = s.play([3, 6], text=TEXT)
        s.wait_state(mid, "sent")
        s.play([], message_id=mid, include_send=False)
        reply = {"fromNumber": PHONE, "message": TEXT, "replyId": 5}
        assert s.server.post(reply, event="message-reply").status_code == 200
        forged = {"number": PHONE, "optInType": f"kw\nFAKE ERROR {PHONE}"}
        assert s.server.post(forged, event="number-opt-in").status_code == 200
        plain = {"number": PHONE, "optInType": "keyword"}
        assert s.server.post(plain, event="number-opt-in").status_code == 200
        assert s.server.post(delivery(), secret="wrong").status_code == 401
        body = encode(delivery())
        bad = s.server.client.post(
            "/webhooks/mta", content=body, headers={"X-Signature": "0" * 64, "X-Request-Id": "r-1"}
        )
        assert bad.status_code == 401
        s.settled()
    records = kept.records
    assert any(r.levelno == logging.DEBUG for r in records)
    lines = [JsonFormatter().format(r) for r in records]
    lines += [TextFormatter("%(message)s").format(r) for r in records]
    text = "\n".join(lines)
    for forbidden in (SECRET, API_KEY, PHONE, PHONE[2:], PHONE[-7:], TEXT):
        assert forbidden not in text, f"{forbidden!r} leaked"
    assert "FAKE ERROR" not in text
    opt_ins = sorted(r.getMessage() for r in records if "opted in" in r.getMessage())
    assert opt_ins == [
        f"number ***{PHONE[-2:]} opted in ({t})" for t in ("keyword", "unknown type")
    ]
    rejected = [json.loads(line) for line in lines[: len(records)] if "webhook rejected" in line]
    assert [r["request_id"] for r in rejected][-1] == "r-1"
    assert all(r.get("request_id") for r in rejected)


def test_text_lines_cannot_be_forged_and_fields_are_bounded() -> None:
    """A line break in a message or field is escaped in text logs; a 5,000-character
    client address (a trusted proxy's header) is cut to a bounded field."""
    record = logging.LogRecord("receiver", logging.WARNING, __file__, 1, "got %s", ("a\nB",), None)
    record.client = "9" * 5000
    record.request_id = "r\r\nFAKE"
    line = TextFormatter("%(message)s").format(record)
    assert "\n" not in line
    assert "\r" not in line
    assert line.startswith("got a\\nB ")
    data = json.loads(JsonFormatter().format(record))
    assert data["client"] == "9" * FIELD_LIMIT + "..."
    assert f"client={'9' * FIELD_LIMIT}... " in line + " "


def test_an_event_line_names_its_account(caplog: pytest.LogCaptureFixture) -> None:
    """Message ids repeat across MTA accounts: a handler's line names the event's account."""
    event = Event("delivery-status", "delivery-status.sent", 0.0, {}, message_id="7", account="b")
    with caplog.at_level(logging.INFO, "receiver.test"):
        EventLog(logging.getLogger("receiver.test"), event).info("handled")
    data = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert (data["account"], data["message_id"]) == ("b", "7")


def test_label_keeps_plain_words_only() -> None:
    """`label` passes short words and refuses numbers, objects, line breaks and long text."""
    assert [label(v) for v in ("keyword", "web_form", "double-opt-in")] == [
        "keyword",
        "web_form",
        "double-opt-in",
    ]
    refused = ["+15551234567", "kw\nFAKE", {"a": 1}, None, 5, "x" * 33, ""]
    assert [label(v, "?") for v in refused] == ["?"] * len(refused)


def test_numbers_and_text_a_handler_quotes_are_masked(tmp_path: Path) -> None:
    """A handler that puts the event's number and text in its exception and its own log
    line: the lines (message and traceback, JSON and text) and the stored last_error
    show neither."""
    registry = Registry()

    @registry.on("message-reply")
    async def careless(event: Event, ctx: Context) -> None:
        ctx.log.warning("looking up %s who said %r", event.phone, event.text)
        ctx.log.warning("quoted as is: %s", event.text)
        raise ValueError(f"cannot handle reply from {event.phone}: {event.text}")

    settings = make_settings(tmp_path, max_attempts=1, log_level="DEBUG", log_format="json")
    with service_logging(tmp_path) as kept, running(settings, registry) as server:
        reply = {"fromNumber": PHONE, "message": QUOTING, "replyId": 6}
        assert server.post(reply, event="message-reply").status_code == 200
        wait_for(lambda: server.query("SELECT 1 FROM events WHERE state = 'dead'"))
        [(last_error,)] = server.query("SELECT last_error FROM events")
    lines = [JsonFormatter().format(r) for r in kept.records]
    lines += [TextFormatter("%(message)s").format(r) for r in kept.records]
    text = "\n".join(lines)
    assert "cannot handle reply from ***" in text, "the failure is still logged"
    assert "ValueError" in text
    for forbidden in (PHONE, PHONE[2:], "diagnosis", "second line"):
        assert forbidden not in text
        assert forbidden not in last_error
    assert last_error == (
        f"{handler_name(careless)}: ValueError: cannot handle reply from"
        f" ***{PHONE[-2:]}: <text, {len(QUOTING)} characters>"
    )


@pytest.mark.parametrize(
    ("body", "phone", "shown"),
    [
        ('{"destinationNumber":"(555) 555-0199","messageId":77}', "+15555550199", "***99"),
        ('{"destinationNumber":"+1 555 555 0198"}', "+15555550198", "***98"),
        ('{"fromNumber":"07911123456","messageId":123456789}', "+447911123456", "***56"),
        ("not json: call 555 555 0123", None, "***23"),
    ],
)
def test_raw_bodies_are_masked_in_every_spelling(body: str, phone: str | None, shown: str) -> None:
    """A raw body shown by the CLI or dashboard masks the number however MTA spelled it,
    and a quarantined body (no number of its own) every phone-like run, but not ids or
    dates."""
    masked = mask_number(body + ' {"at":"2026-12-05"}', phone)
    assert shown in masked
    assert not re.search(r"\d{3}\D?\d{4}\b(?!\d)", masked.replace("123456789", ""))
    assert "2026-12-05" in masked
    if "messageId" in body:
        assert "messageId" in masked
