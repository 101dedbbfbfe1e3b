"""An outage repaired: MTA's webhooks lost while the receiver was away, then a backfill
from the fake MTA's GET /deliveries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from receiver import Context, Event
from receiver.dispatch.loader import build_registry
from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta
from receiver.mta import Rate
from receiver.settings import Secret

from ..admin.test_admin import PASSWORD, log_in
from ..conftest import SECRET, Server, cli, make_settings, running, wait_for
from ..pg import empty_database_sync
from ..pg import query as pg_query

API_KEY = "fake-key"
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


@dataclass
class Outage:
    """A receiver with the built-in handlers and a source-recording one, a fake MTA whose
    webhooks point at it, and the CLI's environment set for both."""

    server: Server
    fake: FakeMTA
    url: str
    sources: list[tuple[str | None, int | None, str]]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the receiver's database from the test."""
        if self.url.startswith("sqlite:"):
            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as c:
                return c.execute(sql).fetchall()
        return pg_query(self.url, sql)

    def settled(self) -> None:
        """Every stored event has been handled."""
        wait_for(lambda: not self.rows("SELECT 1 FROM events WHERE state = 'pending'"))


@contextlib.contextmanager
def outage_setup(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeMTA | None = None,
    url: str | None = None,
    **overrides: Any,
) -> Iterator[Outage]:
    fake = fake or FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.general_rate_limit = 1000
    fake.webhook_backoff = 0.05
    sources: list[tuple[str | None, int | None, str]] = []
    registry = build_registry([])

    @registry.on("delivery-status")
    async def record_source(event: Event, ctx: Context) -> None:
        sources.append((event.message_id, event.status, event.source))

    given = contextlib.nullcontext(url) if url else empty_database_sync(backend, tmp_path)
    with given as url, running_fake_mta(fake) as base_url:
        values: dict[str, Any] = {
            "database_url": url,
            "mta_api_key": Secret(API_KEY),
            "mta_base_url": base_url,
            "mta_send_rate": Rate(1000, 1.0),
            "mta_timeout": 2.0,
            "fallback_grace_seconds": 0.2,
            "fallback_reconcile_seconds": 0.5,
            **overrides,
        }
        for name, value in (
            ("WEBHOOK_SECRETS", SECRET),
            ("DATABASE_URL", url),
            ("MTA_API_KEY", API_KEY),
            ("MTA_BASE_URL", base_url),
        ):
            monkeypatch.setenv(f"RECEIVER_{name}", value)
        with running(make_settings(tmp_path, **values), registry) as server:
            for event in ("delivery-status", "message-send"):
                fake.add_webhook(event, f"{server.url}/webhooks/mta", SECRET, {})
            yield Outage(server, fake, url, sources)


def send(capsys: pytest.CaptureFixture[str], to: str, sender: str | None = "Acme") -> int:
    """Send through the receiver's own path (which records text and route); the messageId."""
    import json

    args = ["send", "--to", to, "--text", "Your code: 42"]
    status, out = cli(capsys, *args, *(["--sender-name", sender] if sender else []))
    assert status == 0, out
    return int(json.loads(out)["messageId"])


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backfill_repairs_an_outage_and_resends_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Statuses lost in an outage are stored from /deliveries as backfilled events,
    dispatched (handlers see source=backfill), the failed iMessage resent once; a second
    run stores nothing; the real webhook arriving late is a duplicate."""
    with outage_setup(backend, tmp_path, monkeypatch) as o:
        o.fake.auto_timeline = (3, 4)
        before = send(capsys, "+15550000001")
        wait_for(lambda: (str(before), 4, "webhook") in o.sources)
        o.fake.webhooks_down = True
        o.fake.auto_timeline = (3, 9)
        failed = send(capsys, "+15550000002")
        o.fake.auto_timeline = (3, 4)
        delivered = send(capsys, "+15550000003")
        wait_for(lambda: len(o.fake.sent.deliveries(None, None)) == 3)
        o.settled()
        assert not any(m in (str(failed), str(delivered)) for m, _, _ in o.sources)
        o.fake.webhooks_down = False

        status, out = cli(capsys, "backfill", "--since", TODAY)
        assert status == 0, out
        assert f"backfill {TODAY}..{TODAY}: 3 rows read, 1 already held, 2 stored" in out
        assert f"stored: message {failed} to ***02: 9 undelivered" in out
        assert "+1555" not in out
        o.settled()
        assert (str(failed), 9, "backfill") in o.sources
        assert (str(delivered), 4, "backfill") in o.sources
        wait_for(lambda: len(o.fake.sends) == 4)  # the SMS resend of the failed iMessage
        resend = o.fake.sends[3].body
        assert resend["subscribers"] == ["+15550000002"]
        assert "senderName" not in resend
        marked = o.rows("SELECT message_id, status FROM events WHERE source = 'backfill'")
        assert sorted(marked) == sorted([(str(failed), 9), (str(delivered), 4)])

        status, out = cli(capsys, "backfill", "--since", TODAY)
        assert status == 0, out
        assert ", 0 stored, 0 unreadable" in out

        late = TimelineMessage(failed, "+15550000002", sender_name="Acme")
        url = f"{o.server.url}/webhooks/mta"
        results = asyncio.run(play_timeline(url, SECRET, late, (9,), include_send=False))
        assert [r.status_code for r in results] == [200]
        o.settled()
        assert o.rows(
            f"SELECT duplicates FROM events WHERE message_id = '{failed}' AND status = 9"
        ) == [(1,)]
        assert len([s for s in o.sources if s[:2] == (str(failed), 9)]) == 1
        assert len(o.fake.sends) == 4


def test_dry_run_stores_nothing_and_says_what_it_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """--dry-run lists what it would store and stores nothing; the real run then does,
    and the event's source shows in `events list` and on the dashboard with the run."""
    dashboard = {
        "admin_password": Secret(PASSWORD),
        "session_secret": Secret("s" * 48),
        "admin_secure_cookies": False,
    }
    with outage_setup("sqlite", tmp_path, monkeypatch, **dashboard) as o:
        o.server.client.follow_redirects = False
        log_in(o.server.client)
        assert "No backfill has run" in o.server.client.get("/admin/").text
        o.fake.webhooks_down = True
        o.fake.auto_timeline = (3, 4)
        sent = send(capsys, "+15550000007")
        wait_for(lambda: o.fake.sent.deliveries(None, None))
        status, out = cli(capsys, "backfill", "--since", TODAY, "--dry-run")
        assert status == 0, out
        assert "1 rows read, 0 already held, 1 would store, 0 unreadable" in out
        assert f"would store: message {sent} to ***07: 4 delivered" in out
        assert o.rows("SELECT COUNT(*) FROM events") == [(0,)]
        status, out = cli(capsys, "backfill", "--since", TODAY)
        assert status == 0, out
        assert "1 stored" in out
        assert o.rows("SELECT source FROM events") == [("backfill",)]
        status, out = cli(capsys, "events", "list")
        assert status == 0, out
        assert out.split("\n")[0].split()[-1] == "SOURCE"
        assert out.split("\n")[1].split()[-1] == "backfill"
        overview = o.server.client.get("/admin/").text
        assert "Last backfill (cli," in overview
        assert "<strong>1 stored</strong>" in overview
        assert "· backfilled" in overview


@pytest.mark.parametrize("failure", [6, 10, 11, 12])
def test_an_ambiguous_word_never_causes_a_resend(
    failure: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A failed iMessage that /deliveries shows as "undeliverable" (it could be 10, 11
    or 12) is stored without a code and never resent."""
    with outage_setup("sqlite", tmp_path, monkeypatch) as o:
        o.fake.webhooks_down = True
        o.fake.auto_timeline = (3, failure)
        sent = send(capsys, "+15550000008")
        wait_for(lambda: o.fake.sent.deliveries(None, None))
        status, out = cli(capsys, "backfill", "--since", TODAY)
        assert status == 0, out
        assert f"message {sent} to ***08: undeliverable (no code)" in out
        o.settled()
        assert (str(sent), None, "backfill") in o.sources
        assert o.rows("SELECT COUNT(*) FROM resends") == [(0,)]
        assert len(o.fake.sends) == 1


def test_a_failure_past_the_max_age_is_skipped_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    """A backfilled failure older than RECEIVER_FALLBACK_MAX_AGE (MTA's date, not the
    backfill's) is not resent: the resend is recorded as skipped, too_old, and logged."""
    caplog.set_level(logging.INFO)
    with outage_setup("sqlite", tmp_path, monkeypatch, fallback_max_age=3600.0) as o:
        o.fake.webhooks_down = True
        old = send(capsys, "+15550000009")
        recent = send(capsys, "+15550000010")
        two_hours_ago = time.time() - 7200
        o.fake.sent.status(old, "+15550000009", 9, at=two_hours_ago)
        o.fake.sent.status(recent, "+15550000010", 9)
        since = dt.datetime.fromtimestamp(two_hours_ago, dt.UTC).date().isoformat()
        status, out = cli(capsys, "backfill", "--since", since)
        assert status == 0, out
        assert "2 stored" in out
        o.settled()
        wait_for(lambda: len(o.fake.sends) == 3)
        assert o.fake.sends[2].body["subscribers"] == ["+15550000010"]
        assert o.rows(f"SELECT state, reason FROM resends WHERE original_message_id = '{old}'") == [
            ("skipped", "too_old")
        ]
        assert any("over RECEIVER_FALLBACK_MAX_AGE" in r.getMessage() for r in caplog.records)
        assert len(o.fake.sends) == 3
