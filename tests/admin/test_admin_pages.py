"""The /admin pages and actions: retry, resend/drop, filters, timeline, redaction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver import Settings
from receiver.admin.forms import filters

from ..conftest import delivery, wait_for
from .test_admin import Flaky, admin_settings, dashboard, dead_letter, log_in, post, query


def test_retry_dead_letter_reruns_only_the_dead_handler(tmp_path: Path) -> None:
    """Retry puts the event back in the queue; the worker re-runs the failed handler and,
    now that it succeeds, the event is done. Retrying a live event is refused."""
    settings = admin_settings(tmp_path)
    flaky = Flaky()
    with dashboard(settings, flaky.registry) as client:
        event_id = dead_letter(settings, client)
        csrf = log_in(client)
        overview = client.get("/admin/")
        assert f'id="dead-{event_id}"' in overview.text
        assert "CRM is down" in overview.text
        flaky.failing = False
        response = client.post(
            f"/admin/events/{event_id}/retry", data={"csrf": csrf, "next": "/admin/"}
        )
        assert response.status_code == 303
        wait_for(
            lambda: (
                query(settings, "SELECT state FROM events WHERE id = ?", (event_id,)) == [("done",)]
            )
        )
        runs = query(
            settings, "SELECT state, attempts FROM handler_runs WHERE event_id = ?", (event_id,)
        )
        assert runs == [("done", 1)]
        assert flaky.seen == [event_id, event_id]
        assert f"Event {event_id} is pending again." in client.get("/admin/").text
        again = client.post(f"/admin/events/{event_id}/retry", data={"csrf": csrf})
        assert again.status_code == 303
        assert "is not a dead letter" in client.get("/admin/").text


def unknown_resend(settings: Settings, original: str) -> None:
    """A resend whose outcome nobody knows (as the outbox leaves it)."""
    query(
        settings,
        "INSERT INTO resends (original_message_id, state, reason, phone, external_id,"
        " request_id, failed_at, due_at, updated_at) VALUES (?, 'unknown', 'no webhook',"
        " '+15550001111', ?, 'r', 1, 1, 1)",
        (original, f"x.sms-fallback.{original}"),
    )


def test_resend_and_drop_unknown(tmp_path: Path) -> None:
    """'Resend' schedules an unknown resend now; 'drop' cancels one; neither applies twice."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        unknown_resend(settings, "501")
        unknown_resend(settings, "502")
        csrf = log_in(client)
        assert 'id="resend-501"' in client.get("/admin/").text
        assert client.post("/admin/resends/501/resend", data={"csrf": csrf}).status_code == 303
        assert client.post("/admin/resends/502/drop", data={"csrf": csrf}).status_code == 303
        rows = query(
            settings,
            "SELECT original_message_id, state, reason, due_at > 1000 FROM resends ORDER BY 1",
        )
        assert rows == [
            ("501", "scheduled", "resend ordered by operator", 1),
            ("502", "cancelled", "dropped by operator", 0),
        ]
        client.post("/admin/resends/502/resend", data={"csrf": csrf})
        assert "not awaiting a decision" in client.get("/admin/").text
        assert query(settings, "SELECT state FROM resends WHERE original_message_id = '502'") == [
            ("cancelled",)
        ]


def test_message_ids_with_slashes_are_one_path_segment(tmp_path: Path) -> None:
    """An id like "evil/../4242" (a signed webhook may carry one) links to its own timeline
    and its buttons act on it, not on message 4242."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        unknown_resend(settings, "4242")
        unknown_resend(settings, "evil/../4242")
        csrf = log_in(client)
        overview = client.get("/admin/").text
        drop = "/admin/resends/evil%2F..%2F4242/drop"
        assert f'href="{drop}?next=' in overview  # Drop asks first, on its own page
        confirm = client.get(f"{drop}?next=/admin/").text
        assert f'action="{drop}"' in confirm
        assert "the person gets no message at all" in confirm
        assert client.get("/admin/messages/evil%2F..%2F4242").status_code == 200
        assert client.post(drop, data={"csrf": csrf}).status_code == 303
        rows = query(settings, "SELECT original_message_id, state FROM resends ORDER BY 1")
    assert rows == [("4242", "unknown"), ("evil/../4242", "cancelled")]


def test_event_filters(tmp_path: Path) -> None:
    """Filters by type, state, status, number and time pick the right events."""
    settings = admin_settings(tmp_path, run_worker=False)
    with dashboard(settings) as client:
        post(client, delivery(801, status=4, destinationNumber="+15550000801"))
        post(client, delivery(802, status=6, destinationNumber="+15550000802"))
        post(
            client,
            {
                "type": "message-reply",
                "replyId": 9,
                "fromNumber": "+15550000803",
                "message": "hi",
                "messageId": 803,
            },
        )
        log_in(client)

        def shown(**params: str) -> set[str]:
            page = client.get("/admin/events", params=params)
            assert page.status_code == 200
            return set(re.findall(r"/admin/messages/(\d+)", page.text))

        assert shown() == {"801", "802", "803"}
        assert shown(status="4") == {"801"}
        assert shown(status="delivery-failed") == {"802"}
        assert shown(type="message-reply") == {"803"}
        assert shown(type="delivery-status.delivered") == {"801"}
        assert shown(number="(555) 000-0802") == {"802"}
        assert shown(state="pending") == {"801", "802", "803"}
        assert shown(state="dead") == set()
        assert shown(since="2999-01-01T00:00") == set()
        assert shown(until="2999-01-01T00:00") == {"801", "802", "803"}
        bad = client.get("/admin/events", params={"since": "yesterday", "status": "nope"})
        assert "not a date and time" in bad.text
        assert "unknown status" in bad.text


def test_timeline_statuses_duplicates_resend_and_redaction(tmp_path: Path) -> None:
    """A message's page lists each status with its duplicates and its resend's state, with
    the number redacted; RECEIVER_REDACT=false shows it whole."""
    for redact in (True, False):
        (tmp_path / str(redact)).mkdir()
        settings = admin_settings(tmp_path / str(redact), run_worker=False, redact=redact)
        with dashboard(settings) as client:
            for status in (1, 3, 6, 6, 6):
                post(client, delivery(912, status=status))
            unknown_resend(settings, "912")
            log_in(client)
            page = client.get("/admin/messages/912")
            assert page.status_code == 200
            text = page.text
            for name in ("queued", "sent", "delivery-failed"):
                assert name in text
            assert re.search(r'class="num">2</td>', text), "two duplicates of status 6"
            assert "state-unknown" in text
            assert "Resend" in text
            assert ("+15551234567" in text) is not redact
            assert ("***67" in text) is redact
            assert client.get("/admin/messages/404404").status_code == 404


def test_filter_parsing() -> None:
    """Query strings become an EventFilter; blanks mean any; times are UTC."""
    parsed = filters({"type": "", "status": "4", "since": "1970-01-02T00:00", "before": "9"})
    assert parsed.query.type is None
    assert parsed.query.status == 4
    assert parsed.query.since == 86_400
    assert parsed.query.before_id == 9
    assert parsed.errors == ()


@pytest.mark.parametrize("value", ["9" * 30, "²", "٣", "-1"])
def test_out_of_range_filters_are_refused_not_a_server_error(value: str) -> None:
    """A status or id past a database integer, or a Unicode digit that int() refuses, is
    an unknown status or no bound, never an exception (a 500 on the events page)."""
    parsed = filters({"status": value, "before": value})
    assert parsed.query.status is None
    assert parsed.query.before_id is None
    assert parsed.errors == (f"unknown status {value!r}",)
