"""Logs of a full run (intake, handlers, resend through the fake MTA, failures) at DEBUG:
no secret, no API key, no phone digits, no message text; request ids on intake failures."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from receiver.logs import QUIET_LOGGERS, JsonFormatter, TextFormatter, configure_logging

from .conftest import SECRET, delivery, encode, make_settings
from .test_fallback import API_KEY, PHONE, fallback

TEXT = "Your code: 42"


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
    rejected = [json.loads(line) for line in lines[: len(records)] if "webhook rejected" in line]
    assert [r["request_id"] for r in rejected][-1] == "r-1"
    assert all(r.get("request_id") for r in rejected)
