"""The dashboard with two MTA accounts (docs/accounts.md): the account on every event
row, an account filter, timelines and resend decisions per account."""

from __future__ import annotations

import re
from pathlib import Path

from receiver.accounts import Account
from receiver.secret import Secret
from receiver.settings import Settings

from ..conftest import delivery, encode, signed_headers
from .test_admin import admin_settings, dashboard, log_in, query

BRAND_SECRET = "2" * 64
BRAND = Account("brand-b", (Secret(BRAND_SECRET),))


def unknown_resend(settings: Settings, original: str, account: str) -> None:
    """A resend of ``account`` whose outcome nobody knows."""
    query(
        settings,
        "INSERT INTO resends (account, original_message_id, state, reason, phone, external_id,"
        " request_id, failed_at, due_at, updated_at) VALUES (?, ?, 'unknown', 'no webhook',"
        " '+15550001111', ?, 'r', 1, 1, 1)",
        (account, original, f"{account}.sms-fallback.{original}"),
    )


def test_events_filtered_and_shown_by_account(tmp_path: Path) -> None:
    """The same message in two accounts: two rows, each with its account and a timeline
    link carrying it; the account filter keeps one; each timeline shows its own event."""
    settings = admin_settings(tmp_path, run_worker=False, file_accounts=(BRAND,))
    body = encode(delivery(555, status=4))
    with dashboard(settings) as client:
        for path, secret in (
            ("/webhooks/mta", settings.webhook_secrets[0].reveal()),
            ("/webhooks/mta/brand-b", BRAND_SECRET),
        ):
            answer = client.post(path, content=body, headers=signed_headers(body, secret))
            assert answer.headers["x-receiver-outcome"] == "accepted"
        log_in(client)

        page = client.get("/admin/events").text
        assert '<td class="account">default</td>' in page
        assert '<td class="account">brand-b</td>' in page
        assert 'href="/admin/messages/555"' in page
        assert 'href="/admin/messages/555?account=brand-b"' in page
        assert '<select name="account">' in page

        only = client.get("/admin/events", params={"account": "brand-b"}).text
        assert re.findall(r'<td class="account">([^<]+)</td>', only) == ["brand-b"]

        ours, theirs = (
            client.get("/admin/messages/555"),
            client.get("/admin/messages/555", params={"account": "brand-b"}),
        )
        assert (ours.status_code, theirs.status_code) == (200, 200)
        assert "account brand-b" in theirs.text
        [(our_id,), (their_id,)] = query(settings, "SELECT id FROM events ORDER BY id")
        assert f'id="event-{our_id}"' in ours.text
        assert f'id="event-{their_id}"' not in ours.text
        assert f'id="event-{their_id}"' in theirs.text
        missing = client.get("/admin/messages/555", params={"account": "brand-c"})
        assert missing.status_code == 404


def test_resend_decisions_per_account(tmp_path: Path) -> None:
    """Message 42 awaits a decision in both accounts: the overview lists both, with
    per-account figures; resending brand-b's leaves the default account's waiting."""
    settings = admin_settings(tmp_path, run_worker=False, file_accounts=(BRAND,))
    with dashboard(settings) as client:
        unknown_resend(settings, "42", "default")
        unknown_resend(settings, "42", "brand-b")
        csrf = log_in(client)
        overview = client.get("/admin/").text
        assert 'id="resend-42"' in overview
        assert 'id="resend-42-brand-b"' in overview
        assert 'action="/admin/resends/42/resend?account=brand-b"' in overview
        assert '<table class="accounts">' in overview

        answer = client.post("/admin/resends/42/resend?account=brand-b", data={"csrf": csrf})
        assert answer.status_code == 303
        assert query(settings, "SELECT account, state FROM resends ORDER BY account") == [
            ("brand-b", "scheduled"),
            ("default", "unknown"),
        ]
        drop = client.get("/admin/resends/42/drop", params={"next": "/admin/"})
        assert 'action="/admin/resends/42/drop"' in drop.text
        client.post("/admin/resends/42/drop", data={"csrf": csrf})
        assert query(settings, "SELECT state FROM resends WHERE account = 'default'") == [
            ("cancelled",)
        ]


def test_the_backfill_line_names_its_account(tmp_path: Path) -> None:
    """The overview's last backfill is one account's run (each reads with its own key):
    a failed run says whose it was."""
    settings = admin_settings(tmp_path, run_worker=False, file_accounts=(BRAND,))
    with dashboard(settings) as client:
        query(
            settings,
            "INSERT INTO backfill_runs (cause, since, until, started_at, finished_at,"
            " rows_read, held, stored, unreadable, error, account) VALUES ('interval',"
            " '2026-01-01', '2026-01-02', 1, 2, 0, 0, 0, 0, 'MTARejected: 401', 'brand-b')",
        )
        log_in(client)
        overview = client.get("/admin/").text
    line = re.search(r'<p class="backfill".*?</p>', overview, re.S)
    assert line is not None
    assert "account brand-b" in line.group(0)
