"""``webhooks register|list|rotate-secret`` against the fake MTA (and a real receiver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli import main
from receiver.fake_mta import FakeMTA

from ..conftest import OLD_SECRET, SECRET, cli, fake_mta_env, make_settings, running

NEW_SECRET = "c" * 128
URL = "https://receiver.example.com/webhooks/mta"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMTA]:
    """A fake MTA, and the CLI's environment pointing at it."""
    with fake_mta_env(monkeypatch, f"sqlite:///{tmp_path / 'r.db'}") as state:
        yield state


def test_register_creates_each_event_once(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str]
) -> None:
    """register creates one registration per event at its own URL; a second run adds none."""
    status, out = cli(capsys, "webhooks", "register", "--url", URL, "--json")
    assert status == 0
    assert {r["action"] for r in json.loads(out)} == {"created"}
    hooks = fake.webhooks
    assert sorted((h.event, h.url) for h in hooks) == sorted(
        (e, f"{URL}?event={e}")
        for e in ("message-reply", "delivery-status", "message-send", "number-opt-in")
    )
    assert {h.secret for h in hooks} == {SECRET}
    assert all(h.options["retryOnError"] is True for h in hooks)

    status, out = cli(capsys, "webhooks", "register", "--url", URL, "--json")
    assert status == 0
    assert {r["action"] for r in json.loads(out)} == {"exists"}
    assert len(fake.webhooks) == 4
    listed = [r.method for r in fake.requests if r.path.endswith("/webhooks")]
    assert listed.count("GET") == 2


def test_register_pages_through_the_listing(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registration beyond the first page of GET /webhooks is still found."""
    for n in range(120):
        fake.add_webhook("message-reply", f"https://other.example/{n}", "s", {})
    fake.add_webhook("message-reply", f"{URL}?event=message-reply", SECRET, {})
    status, out = cli(
        capsys, "webhooks", "register", "--url", URL, "--events", "message-reply", "--json"
    )
    assert status == 0
    assert [r["action"] for r in json.loads(out)] == ["exists"]
    assert len(fake.webhooks) == 121
    status, out = cli(capsys, "webhooks", "list", "--json")
    assert len(json.loads(out)) == 121


@pytest.mark.parametrize("first_page", [0, 1])
def test_register_twice_leaves_one_per_pair_whatever_the_page_base(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str], first_page: int
) -> None:
    """Against a 0- or 1-based MTA with over a page of others, two runs make exactly four."""
    fake.first_page = first_page
    for n in range(60):  # more than two of MTA's default 25-row pages
        fake.add_webhook("message-reply", f"https://other.example/{n}", "s", {})
    for _ in range(2):
        assert cli(capsys, "webhooks", "register", "--url", URL)[0] == 0
    ours = [(h.event, h.url) for h in fake.webhooks if h.url.startswith(URL)]
    assert len(ours) == len(set(ours)) == 4
    gets = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/webhooks")]
    assert gets[0].query == ""  # the first call sends no paging parameters
    _status, out = cli(capsys, "webhooks", "list", "--json")
    assert sorted(r["id"] for r in json.loads(out)) == sorted(h.id for h in fake.webhooks)


def test_register_sends_alert_email_and_retry_never_skip_errors(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str]
) -> None:
    """--alert-email sets alertEmail and sendAlertEmail; retryOnError on, skipErrors absent."""
    argv = ("webhooks", "register", "--url", URL, "--events", "delivery-status")
    assert cli(capsys, *argv, "--alert-email", "ops@example.com")[0] == 0
    posted = [r.json for r in fake.requests if r.method == "POST"]
    assert len(posted) == 1
    assert posted[0]["alertEmail"] == "ops@example.com"
    assert posted[0]["sendAlertEmail"] is True
    assert posted[0]["retryOnError"] is True
    assert "skipErrors" not in posted[0]
    assert "skipErrorCodes" not in posted[0]


@pytest.mark.parametrize("answer_204", [False, True])
def test_prune_keeps_the_oldest_of_each_pair(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str], answer_204: bool
) -> None:
    """prune --dry-run deletes nothing; prune deletes all but the oldest per (event, url)."""
    fake.delete_returns_204 = answer_204
    for _ in range(3):
        fake.add_webhook("message-reply", f"{URL}?event=message-reply", SECRET, {})
    fake.add_webhook("delivery-status", f"{URL}?event=delivery-status", SECRET, {})
    fake.add_webhook("delivery-status", f"{URL}?event=delivery-status", SECRET, {})
    fake.add_webhook("message-reply", "https://other.example/x", "s", {})
    status, out = cli(capsys, "webhooks", "prune", "--dry-run", "--json")
    assert status == 0
    assert sorted(r["id"] for r in json.loads(out)) == [2, 3, 5]
    assert len(fake.webhooks) == 6
    status, out = cli(capsys, "webhooks", "prune")
    assert status == 0
    assert "3 duplicate registration(s) deleted" in out
    assert sorted(h.id for h in fake.webhooks) == [1, 4, 6]


@pytest.mark.parametrize("answer_204", [False, True])
def test_delete_one_registration(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str], answer_204: bool
) -> None:
    """webhooks delete ID removes that registration, whether MTA answers 200 or 204."""
    fake.delete_returns_204 = answer_204
    fake.add_webhook("message-reply", "https://a.example/x", "s", {})
    fake.add_webhook("message-reply", "https://b.example/x", "s", {})
    status, out = cli(capsys, "webhooks", "delete", "1")
    assert status == 0
    assert "deleted registration 1" in out
    assert [h.id for h in fake.webhooks] == [2]


def test_register_refuses_unknown_events(fake: FakeMTA, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown event name is a usage error (exit 2), nothing is registered."""
    assert main(["webhooks", "register", "--url", URL, "--events", "message-reply,nope"]) == 2
    assert fake.webhooks == []


def test_rotate_refuses_a_secret_not_yet_accepted(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotate-secret refuses (exit 1, steps printed) while receivers would reject it."""
    assert cli(capsys, "webhooks", "register", "--url", URL)[0] == 0
    status, out = cli(capsys, "webhooks", "rotate-secret", "--new-secret", NEW_SECRET, "--url", URL)
    assert status == 1
    assert "RECEIVER_WEBHOOK_SECRETS" in out
    assert "1. add the new secret" in out
    status, out = cli(capsys, "webhooks", "rotate-secret", "--url", URL)
    assert status == 1
    assert "generated a new secret: " in out
    assert {h.secret for h in fake.webhooks} == {SECRET}
    assert not [r for r in fake.requests if r.method == "PATCH"]


def test_rotate_switches_our_registrations_after_a_signed_test(
    fake: FakeMTA,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the new secret accepted, a signed test passes and only our URL's rows change."""
    settings = make_settings(tmp_path)
    with running(settings) as server:  # accepts SECRET and OLD_SECRET
        public = f"{server.url}/webhooks/mta"
        monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
        assert cli(capsys, "webhooks", "register", "--url", public)[0] == 0
        fake.add_webhook("message-reply", "https://someone-else.example/hook", "x", {})

        monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", f"{SECRET},{NEW_SECRET}")
        status, out = cli(
            capsys, "webhooks", "rotate-secret", "--new-secret", NEW_SECRET, "--url", public
        )
        assert status == 1  # the running receiver does not accept NEW_SECRET: refused
        assert "got 401" in out
        assert {h.secret for h in fake.webhooks} == {SECRET, "x"}

        monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", f"{SECRET},{OLD_SECRET}")
        status, out = cli(
            capsys,
            "webhooks",
            "rotate-secret",
            "--new-secret",
            OLD_SECRET,
            "--url",
            public,
            "--json",
        )
        assert status == 0
        assert len(json.loads(out)["updated"]) == 4
    secrets = {h.url: h.secret for h in fake.webhooks}
    assert secrets.pop("https://someone-else.example/hook") == "x"
    assert set(secrets.values()) == {OLD_SECRET}


def test_webhooks_need_an_api_key(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without RECEIVER_MTA_API_KEY the webhook commands are a configuration error."""
    monkeypatch.delenv("RECEIVER_MTA_API_KEY")
    assert main(["webhooks", "list"]) == 2
    assert "RECEIVER_MTA_API_KEY" in capsys.readouterr().err
