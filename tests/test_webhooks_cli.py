"""``webhooks register|list|rotate-secret`` against the fake MTA (and a real receiver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli import main
from receiver.fake_mta import FakeMTA

from .conftest import OLD_SECRET, SECRET, cli, fake_mta_env, make_settings, running

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


def test_register_refuses_unknown_events(fake: FakeMTA, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown event name is a usage error (exit 2), nothing is registered."""
    assert main(["webhooks", "register", "--url", URL, "--events", "message-reply,nope"]) == 2
    assert fake.webhooks == []


def test_rotate_refuses_a_secret_not_yet_accepted(
    fake: FakeMTA, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotate-secret refuses (exit 1, steps printed) while receivers would reject it."""
    assert cli(capsys, "webhooks", "register", "--url", URL)[0] == 0
    status, out = cli(capsys, "webhooks", "rotate-secret", "--new-secret", NEW_SECRET)
    assert status == 1
    assert "RECEIVER_WEBHOOK_SECRETS" in out
    assert "1. add the new secret" in out
    status, out = cli(capsys, "webhooks", "rotate-secret")
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
