"""The dashboard's pages for every event kind, its refusal pages, the due-based backlog
age and the charts (with their store queries on both backends)."""

from __future__ import annotations

import time
from pathlib import Path

from receiver.admin import charts
from receiver.store import Store

from ..conftest import delivery, schedule_resend, signed_headers
from ..store.test_store import incoming, reply
from .test_admin import PASSWORD, admin_settings, dashboard, log_in, post, query, token


def test_every_event_kind_has_a_page(tmp_path: Path) -> None:
    """Quarantined, opt-in and test (unknown) events each have a detail page with their
    body (numbers masked) and handler runs; an unknown id is a 404 page with a way back."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        log_in(client)
        post(client, {"optInType": "imessage", "fromNumber": "+15555550123"})
        post(client, {"type": "receiver-test", "testId": "abc"})
        bad = b"not json at all"
        assert (
            client.post("/webhooks/mta", content=bad, headers=signed_headers(bad)).headers[
                "X-Receiver-Outcome"
            ]
            == "quarantined"
        )
        rows = query(settings, "SELECT id, name, state FROM events ORDER BY id")
        assert [r[2] for r in rows] == ["pending", "pending", "quarantined"]
        for event_id, name, _ in rows:
            page = client.get(f"/admin/events/{event_id}")
            assert page.status_code == 200
            assert f'Event <span class="id">{event_id}</span> · {name}' in page.text
            assert "Body as received" in page.text
        opt_in = client.get(f"/admin/events/{rows[0][0]}").text
        assert "+15555550123" not in opt_in
        assert "***23" in opt_in
        assert "not json at all" in client.get(f"/admin/events/{rows[2][0]}").text
        assert "Not parsed, so no handler ran." in client.get(f"/admin/events/{rows[2][0]}").text
        listed = client.get("/admin/events").text
        assert f'href="/admin/events/{rows[2][0]}"' in listed
        missing = client.get("/admin/events/999")
        assert missing.status_code == 404
        assert 'href="/admin/events"' in missing.text


def test_refusals_are_pages_with_a_way_back(tmp_path: Path) -> None:
    """The login throttle and a stale form are HTML pages of the dashboard with a link
    back, and keep their statuses (429 with Retry-After, 403)."""
    with dashboard(admin_settings(tmp_path)) as client:
        csrf = token(client.get("/admin/login").text)
        stale = client.post("/admin/login", data={"csrf": "stale", "password": PASSWORD})
        assert stale.status_code == 403
        assert "<h1>Your session has changed</h1>" in stale.text
        assert 'href="/admin/login"' in stale.text
        for _ in range(5):
            client.post("/admin/login", data={"csrf": csrf, "password": "nope"})
        throttled = client.post("/admin/login", data={"csrf": csrf, "password": PASSWORD})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert throttled.headers["content-type"].startswith("text/html")
        assert "<h1>Too many failed logins</h1>" in throttled.text
        assert 'href="/admin/login"' in throttled.text


def test_overview_charts(tmp_path: Path) -> None:
    """The overview draws webhooks per hour by type and by outcome, and resend outcomes,
    as inline SVG for 24 h and 7 days; the Drop risk is stated."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        log_in(client)
        post(client, delivery(1, status=4))
        post(client, delivery(2, status=6))
        post(client, {"fromNumber": "+15555550123", "message": "hi", "replyId": 5})
        query(
            settings,
            "INSERT INTO resends (original_message_id, state, reason, external_id, request_id,"
            " failed_at, due_at, updated_at) VALUES ('9', 'skipped', 'opted_out', 'x.9', 'r',"
            " 1, 1, ?)",
            (time.time(),),
        )
        page = client.get("/admin/").text
        assert page.count("<svg") == 2
        assert "<script" not in page
        assert ": 1 delivered</title>" in page
        assert ": 1 failed</title>" in page
        assert ": 1 message-reply</title>" in page
        assert '<span class="hlabel">skipped: opted out</span>' in page
        assert "the person gets no message at all" in page
        week = client.get("/admin/?range=7d").text
        assert "Last 7 days" in week
        assert week.count("<svg") == 2


async def test_chart_queries_on_each_backend(store: Store) -> None:
    """Hourly counts by name and resend outcomes read the same on SQLite and PostgreSQL."""
    now = 1_700_000_000.0
    hour = int(now) // 3600
    await store.ingest(incoming(delivery(1, status=4), received_at=now - 10))
    await store.ingest(incoming(delivery(2, status=6), received_at=now - 3600))
    await store.ingest(incoming(reply(5), received_at=now - 20))
    await store.ingest(incoming(delivery(3, status=4), received_at=now - 8 * 86400))
    await schedule_resend(store, "2", at=now - 5, state="skipped", reason="opted_out")
    rows = await store.operator.webhooks_per_hour(now - 86400)
    assert sorted((r.hour - hour, r.name, r.count) for r in rows) == sorted(
        [
            (0, "delivery-status.delivered", 1),
            (-1, "delivery-status.delivery-failed", 1),
            (0, "message-reply", 1),
        ]
    )
    by_type, by_outcome = charts.webhook_charts(rows, now, 24)
    assert dict((n, c) for n, _, c in by_outcome.legend) == {
        "delivered": 1,
        "failed": 1,
        "in progress": 0,
        "unknown": 0,
    }
    assert by_type.total == 3
    outcomes = await store.operator.resend_outcomes(now - 60)
    assert [(o.state, o.reason, o.count) for o in outcomes] == [("skipped", "opted_out", 1)]
    assert (await store.operator.event_body(99999)) is None


async def test_longest_due_counts_from_due_not_arrival(store: Store) -> None:
    """An old event retried a moment ago counts from when it became due, not arrival."""
    now = 1_700_000_000.0
    await store.ingest(incoming(delivery(1, status=6), received_at=now - 86400))
    await store.execute("UPDATE events SET run_after = ?", (now - 30,))
    figures = await store.operator.backlog(now)
    assert figures.oldest_pending_age == 30
    await store.execute("UPDATE events SET run_after = ?", (now + 60,))  # backing off
    assert (await store.operator.backlog(now)).oldest_pending_age == 0


def test_an_id_past_the_databases_integers_is_a_404_not_a_500(tmp_path: Path) -> None:
    """A 23-digit event id on the event page or its retry action is no event's: 404 and a
    refusal, never an overflow."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        log_in(client)
        assert client.get("/admin/events/99999999999999999999999").status_code == 404
        csrf = token(client.get("/admin/events").text)
        done = client.post("/admin/events/99999999999999999999999/retry", data={"csrf": csrf})
        assert done.status_code == 303
