"""iMessage → SMS fallback end to end: receiver over HTTP, fake MTA over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from receiver_handlers.fallback import is_stop

from receiver.accounts import Account
from receiver.dispatch.loader import build_registry
from receiver.errors import ConfigError
from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta
from receiver.fallback import wiring
from receiver.fallback.content import original_text
from receiver.fallback.outbox import Outbox, Sender
from receiver.metrics import Metrics
from receiver.mta import Rate
from receiver.mta.phones import e164
from receiver.services import mta_client
from receiver.settings import Secret
from receiver.store.sqlite import SqliteStore

from ..conftest import SECRET, Server, make_settings, running, schedule_resend, wait_for
from ..store.test_store import eventually

API_KEY = "fake-key"
PHONE = "+15551230000"
_ids = itertools.count(1000)


@dataclass
class Setup:
    """A receiver with the built-in handlers, wired to a fake MTA."""

    server: Server
    fake: FakeMTA

    def play(
        self,
        steps: Sequence[int],
        *,
        sender: str | None = "Acme",
        text: str = "Your code: 42",
        include_send: bool = True,
        message_id: int | None = None,
        phone: str = PHONE,
        **fields: Any,
    ) -> int:
        """Play one message's timeline; return its messageId."""
        message_id = message_id or next(_ids)
        message = TimelineMessage(
            message_id,
            phone,
            text=text,
            external_id=f"order-{message_id}",
            tags=fields.pop("tags", {"campaign": "spring"}),
            sender_name=sender,
            **fields,
        )
        results = asyncio.run(
            play_timeline(
                f"{self.server.url}/webhooks/mta", SECRET, message, steps, include_send=include_send
            )
        )
        assert all(r.ok for r in results), results
        return message_id

    def resend(self, message_id: int) -> dict[str, Any] | None:
        rows = self.server.query(
            "SELECT state, reason, resend_message_id, external_id, double_delivery, attempts"
            " FROM resends WHERE original_message_id = ?",
            (str(message_id),),
        )
        if not rows:
            return None
        keys = (
            "state",
            "reason",
            "resend_message_id",
            "external_id",
            "double_delivery",
            "attempts",
        )
        return dict(zip(keys, rows[0], strict=True))

    def wait_state(self, message_id: int, *states: str, timeout: float = 10) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            row = self.resend(message_id)
            return row if row and row["state"] in states else None

        result: dict[str, Any] = wait_for(reached, timeout=timeout)
        return result

    def settled(self) -> None:
        """Every accepted event has been handled."""
        wait_for(lambda: not self.server.query("SELECT 1 FROM events WHERE state = 'pending'"))


@contextlib.contextmanager
def fallback(tmp_path: Path, fake: FakeMTA | None = None, **overrides: Any) -> Iterator[Setup]:
    fake = fake or FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    with running_fake_mta(fake) as base_url:
        values: dict[str, Any] = {
            "mta_api_key": Secret(API_KEY),
            "mta_base_url": base_url,
            "mta_send_rate": Rate(1000, 1.0),
            "mta_timeout": 2.0,
            "fallback_grace_seconds": 0.2,
            "fallback_reconcile_seconds": 0.5,
        }
        values.update(overrides)
        settings = make_settings(tmp_path, **values)
        with running(settings, build_registry([])) as server:
            yield Setup(server, fake)


def test_failed_imessage_is_resent_once_as_sms(tmp_path) -> None:
    """A failed iMessage goes out again as SMS: once, same text, no sender, tagged."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "sent")
        s.play([6, 9], message_id=mid, include_send=False)  # history resent, more failures
        s.settled()
        assert s.resend(mid)["state"] == "sent"
    assert len(s.fake.sends) == 1
    body = s.fake.sends[0].body
    assert body["subscribers"] == [PHONE]
    assert body["message"] == "Your code: 42"
    assert "senderName" not in body
    assert "longcodeId" not in body
    assert body["externalId"] == row["external_id"] == f"order-{mid}.sms-fallback.{mid}"
    assert body["tags"] == {"campaign": "spring", "fallbackOf": str(mid)}
    assert row["resend_message_id"] == str(s.fake.sends[0].message_id)


def test_resend_names_the_configured_longcode(tmp_path, caplog) -> None:
    """With RECEIVER_FALLBACK_LONGCODE_ID the resend carries longcodeId, never senderName,
    and start-up does not warn; without it, start-up warns."""
    with fallback(tmp_path, fallback_longcode_id="4242") as s:
        s.wait_state(s.play([3, 6]), "sent")
    body = s.fake.sends[0].body
    assert body["longcodeId"] == 4242
    assert "senderName" not in body
    assert "RECEIVER_FALLBACK_LONGCODE_ID" not in caplog.text
    (tmp_path / "other").mkdir()
    with fallback(tmp_path / "other"):
        pass
    assert "resends are on without RECEIVER_FALLBACK_LONGCODE_ID" in caplog.text


def test_delivered_within_grace_cancels(tmp_path) -> None:
    """MTA's own fallback delivered within the grace period: the resend is cancelled."""
    with fallback(tmp_path, fallback_grace_seconds=30) as s:
        mid = s.play([3, 6])
        s.wait_state(mid, "scheduled")
        s.play([4], message_id=mid, include_send=False)
        row = s.wait_state(mid, "cancelled")
    assert row["reason"] == "delivered"
    assert s.fake.sends == []


@pytest.mark.parametrize(
    ("status", "reason"), [(10, "invalid-number"), (11, "stopped-number"), (12, "landline")]
)
def test_never_resent_for_invalid_opted_out_or_landline(tmp_path, status, reason) -> None:
    """10, 11 and 12 are never resent: the resend is recorded as skipped with the reason."""
    with fallback(tmp_path) as s:
        mid = s.play([3, status])
        row = s.wait_state(mid, "skipped")
    assert row["reason"] == reason
    assert s.fake.sends == []


@pytest.mark.parametrize(("status", "reason"), [(10, "invalid-number"), (12, "landline")])
def test_never_resend_status_after_the_failure_skips_the_scheduled_resend(
    tmp_path, status, reason
) -> None:
    """A 10 or 12 that comes after a failure already scheduled the resend skips it."""
    with fallback(tmp_path, fallback_grace_seconds=2.0) as s:
        mid = s.play([3, 6])
        s.wait_state(mid, "scheduled")
        s.play([status], message_id=mid, include_send=False)
        row = s.wait_state(mid, "skipped", "sent", timeout=5)
        s.settled()
    assert (row["state"], row["reason"]) == ("skipped", reason)
    assert s.fake.sends == []


def test_stopped_number_on_a_resend_opts_the_number_out(tmp_path) -> None:
    """Status 11 on one of our own resends records the opt-out: the next failed iMessage
    to that number is not resent."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "sent")
        stopped = {
            "destinationNumber": PHONE,
            "messageId": int(row["resend_message_id"]),
            "externalId": row["external_id"],
            "status": 11,
            "tags": {"fallbackOf": str(mid)},
            "type": "delivery-status",
        }
        assert s.server.post(stopped).status_code == 200
        s.wait_state(mid, "failed")
        s.settled()
        later = s.play([3, 6])
        row = s.wait_state(later, "skipped")
    assert row["reason"] == "opted_out"
    assert len(s.fake.sends) == 1


def test_resend_webhook_without_our_tags_does_not_loop(tmp_path) -> None:
    """A failure of our resend that carries neither our tag nor our externalId, but a
    senderName, is still known by its messageId: no second resend."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "sent")
        bare = {
            "destinationNumber": PHONE,
            "messageId": int(row["resend_message_id"]),
            "status": 6,
            "senderName": "Acme",
            "type": "delivery-status",
        }
        assert s.server.post(bare).status_code == 200
        s.settled()
        assert s.resend(int(row["resend_message_id"])) is None
    assert len(s.fake.sends) == 1


def test_failed_imessage_to_an_apple_id_email_is_not_resent(tmp_path) -> None:
    """iMessage reaches Apple ID emails too; an SMS cannot: skipped, nothing sent."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6], phone="Someone@Example.com")
        row = s.wait_state(mid, "skipped")
    assert row["reason"] == "not_a_phone_number"
    assert s.fake.sends == []


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+1 (555) 123-4567", "+15551234567"),
        ("15551234567", "+15551234567"),
        ("5551234567", "+15551234567"),
        ("+44 20 7946 0958", "+442079460958"),
        (" Someone@Example.com ", "someone@example.com"),
    ],
)
def test_opt_out_key_is_the_e164_spelling(number: str, key: str) -> None:
    """Opt-outs match across spellings of a number; each email address is its own key."""
    assert e164(number) == key


def test_plain_sms_failure_is_not_resent(tmp_path) -> None:
    """A message sent as SMS (no Sender Identity) is not a fallback candidate."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6], sender=None)
        s.settled()
        assert s.resend(mid) is None
    assert s.fake.sends == []


def test_opted_out_number_is_not_resent(tmp_path) -> None:
    """A number that replied STOP is never texted again by the fallback."""
    with fallback(tmp_path) as s:
        reply = {
            "fromNumber": "15551230000",
            "replyId": 9001,
            "message": " Stop ",
            "type": "message-reply",
        }
        assert s.server.post(reply).status_code == 200
        s.settled()
        mid = s.play([3, 6])
        row = s.wait_state(mid, "skipped")
    assert row["reason"] == "opted_out"
    assert s.fake.sends == []


def test_unknown_text_is_not_resent(tmp_path) -> None:
    """Without the text (no message-send, no own send, no lookup) nothing is sent."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6], include_send=False)
        row = s.wait_state(mid, "skipped")
    assert row["reason"] == "content_unknown"
    assert s.fake.sends == []


def test_thirty_concurrent_duplicate_failures_one_send(tmp_path) -> None:
    """30 concurrent copies of the failure webhook lead to exactly one send."""
    with fallback(tmp_path) as s:
        mid = s.play([3])
        failure = {
            "destinationNumber": PHONE,
            "messageId": mid,
            "externalId": f"order-{mid}",
            "status": 6,
            "senderName": "Acme",
            "type": "delivery-status",
        }
        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda _: s.server.post(failure).status_code, range(30)))
        s.wait_state(mid, "sent")
        s.settled()
    assert answers == [200] * 30
    assert len(s.fake.sends) == 1


def test_resend_failure_does_not_loop(tmp_path) -> None:
    """The resend's own failure updates its state and never triggers another resend."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "sent")
        resend_id = int(row["resend_message_id"])
        failure = {
            "destinationNumber": PHONE,
            "messageId": resend_id,
            "externalId": row["external_id"],
            "status": 6,
            "tags": {"campaign": "spring", "fallbackOf": str(mid)},
            "type": "delivery-status",
        }
        assert s.server.post(failure).status_code == 200
        row = s.wait_state(mid, "failed")
        s.settled()
        assert s.resend(resend_id) is None
    assert len(s.fake.sends) == 1


def test_429_retry_after_is_honoured(tmp_path) -> None:
    """A 429 pauses sending for Retry-After seconds; then the resend goes out once."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "429", retry_after=1)
    with fallback(tmp_path, fake) as s:
        mid = s.play([3, 6])
        s.wait_state(mid, "sent")
    attempts = [r for r in s.fake.requests if r.path.endswith("/send")]
    assert len(attempts) == 2
    assert len(s.fake.sends) == 1
    assert attempts[1].at - attempts[0].at >= 1.0


def test_500_is_retried_with_the_same_request_id(tmp_path) -> None:
    """A 500 is retried; every attempt of one logical send carries one X-Request-Id."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(2, "500")
    with fallback(tmp_path, fake) as s:
        mid = s.play([3, 6])
        s.wait_state(mid, "sent")
    attempts = [r for r in s.fake.requests if r.path.endswith("/send")]
    ids = {r.headers.get("x-request-id") for r in attempts}
    assert len(attempts) == 3
    assert len(ids) == 1
    assert None not in ids
    assert len(s.fake.sends) == 1


def test_delivered_during_a_429_pause_calls_the_resend_off(tmp_path) -> None:
    """A DELIVERED that arrives while the send waits out a 429's Retry-After cancels it:
    nothing goes out, and no double delivery is recorded."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "429", retry_after=3)
    with fallback(tmp_path, fake) as s:
        mid = s.play([3, 6])
        wait_for(lambda: [r for r in s.fake.requests if r.path.endswith("/send")])
        assert s.resend(mid)["state"] == "sending"  # type: ignore[index]
        s.play([4], message_id=mid, include_send=False)
        row = s.wait_state(mid, "cancelled", "sent")
        s.settled()
    assert s.fake.sends == []
    assert (row["state"], row["reason"], row["double_delivery"]) == ("cancelled", "delivered", 0)


def test_landline_status_during_a_429_pause_calls_the_resend_off(tmp_path) -> None:
    """A 12 (landline) that arrives while the send waits out a Retry-After skips it:
    the message's state keeps its first failure, so the outbox looks at its events."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "429", retry_after=3)
    with fallback(tmp_path, fake) as s:
        mid = s.play([3, 6])
        wait_for(lambda: [r for r in s.fake.requests if r.path.endswith("/send")])
        s.play([12], message_id=mid, include_send=False)
        row = s.wait_state(mid, "skipped", "sent")
        s.settled()
    assert s.fake.sends == []
    assert (row["state"], row["reason"]) == ("skipped", "landline")


def test_long_text_goes_as_mms_without_the_imessage_marker(tmp_path) -> None:
    """A text over 160 characters is resent as MMS (SMS would be a 400); the tag that
    marked the original as an iMessage is not copied onto the SMS."""
    marker = (("channel", "imessage"),)
    with fallback(tmp_path, fallback_imessage_tags=marker) as s:
        tags = {"campaign": "spring", "channel": "imessage"}
        mid = s.play([3, 6], text="y" * 300, sender=None, tags=tags)
        s.wait_state(mid, "sent")
    [sent] = s.fake.sends
    assert sent.body["isMMS"] is True
    assert sent.body["message"] == "y" * 300
    assert sent.body["tags"] == {"campaign": "spring", "fallbackOf": str(mid)}


def test_hung_send_is_not_resent_blindly(tmp_path) -> None:
    """A send that timed out is never retried: it waits for a webhook, then is `unknown`."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "hang")
    with fallback(tmp_path, fake, mta_timeout=0.3) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "unknown")
        s.settled()
    attempts = [r for r in s.fake.requests if r.path.endswith("/send")]
    assert len(attempts) == 1
    assert row["resend_message_id"] is None


@pytest.mark.parametrize("echoed", ["externalId and tags", "tags only"])
def test_unknown_outcome_reconciled_by_webhook(tmp_path, echoed) -> None:
    """A dropped answer after MTA took the send is reconciled by the resend's webhook,
    found by its externalId, or by our fallbackOf tag when MTA echoed only the tags."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "drop-after-send")
    with fallback(tmp_path, fake, fallback_reconcile_seconds=30) as s:
        mid = s.play([3, 6])
        row = s.wait_state(mid, "reconciling")
        sent = s.fake.sends[0]
        webhook = {
            "destinationNumber": PHONE,
            "messageId": sent.message_id,
            "externalId": row["external_id"] if echoed == "externalId and tags" else None,
            "status": 4,
            "tags": sent.body["tags"],
            "type": "delivery-status",
        }
        assert s.server.post(webhook).status_code == 200
        row = s.wait_state(mid, "delivered")
    assert row["resend_message_id"] == str(sent.message_id)
    assert len(s.fake.sends) == 1


def test_late_delivered_after_resend_is_a_double_delivery(tmp_path) -> None:
    """A DELIVERED of the original after its resend went out is recorded, not ignored."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])
        s.wait_state(mid, "sent")
        s.play([4], message_id=mid, include_send=False)
        wait_for(lambda: s.resend(mid)["double_delivery"] == 1)


def test_burst_of_failures_never_exceeds_the_rate(tmp_path) -> None:
    """200 failures at once: 200 resends, and MTA's rate limit is never exceeded."""
    fake = FakeMTA(API_KEY, rate_limit=50, rate_window=1.0)
    with fallback(tmp_path, fake, mta_send_rate=Rate(50, 1.0)) as s:
        ids = [s.play([6], include_send=True) for _ in range(200)]
        states = wait_for(
            lambda: (
                s.server.query(
                    "SELECT state, COUNT(*) FROM resends GROUP BY state HAVING state = 'sent'"
                )
                == [("sent", 200)]
                and s.server.query("SELECT state, COUNT(*) FROM resends GROUP BY state")
            ),
            timeout=30,
        )
    assert states == [("sent", 200)]
    assert len(s.fake.sends) == 200
    assert s.fake.rate_limit_violations == 0
    assert len({send.body["externalId"] for send in s.fake.sends}) == len(ids)


def test_definite_rejection_is_final_with_mtas_message(tmp_path) -> None:
    """A 4xx other than 429 is final: the resend is `rejected` with MTA's message, not retried."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6], text="x" * 1600)  # the fake refuses MMS text over 1,550
        row = s.wait_state(mid, "rejected")
        s.settled()
    attempts = [r for r in s.fake.requests if r.path.endswith("/send")]
    assert len(attempts) == 1
    assert s.fake.sends == []
    assert "MTA answered 400" in row["reason"]


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        (" Stop ", True),
        ("STOP.", True),
        ("Stop please", True),
        ("STOP ALL", True),
        ("stopall", True),
        ("opt-out", True),
        ("Opt out!", True),
        ("REVOKE", True),
        ("end", True),
        ("Cancel", True),
        ("Cancel my appointment", False),
        ("End of the day works", False),
        ("Don't stop", False),
        ("", False),
        ("!!!", False),
    ],
)
def test_stop_replies(text: str, stop: bool) -> None:
    """Opt-out keywords in any case and punctuation; ambiguous words only on their own."""
    assert is_stop(text) is stop


async def test_a_send_longer_than_its_lease_keeps_it(tmp_path, caplog) -> None:
    """The outbox renews the leases of resends in hand: another replica's outbox does not
    take a send slower than one lease for the send of a dead worker (and move it to
    reconciling)."""
    fake = FakeMTA(API_KEY, rate_limit=1000, rate_window=1.0)
    fake.fail_next(1, "slow", delay=1.0)
    settings = make_settings(
        tmp_path, mta_api_key=Secret(API_KEY), mta_send_rate=Rate(1000, 1.0), mta_timeout=5.0
    )
    store = SqliteStore(settings.database_url)
    await store.open()

    async def text(original: str) -> str:
        return "Your code: 42"

    try:
        with running_fake_mta(fake) as base_url:
            settings = dataclasses.replace(settings, mta_base_url=base_url)
            metrics = Metrics()
            client = mta_client(settings, metrics, store)
            senders = {"default": Sender(client)}
            box, rival = (Outbox(store, senders, settings, metrics, text_lookup=text) for _ in "AB")
            box.lease = rival.lease = 0.3  # the slow send takes a second
            await schedule_resend(store, "77", phone=PHONE)
            running_box = asyncio.create_task(box.run())
            await eventually(lambda: fake.requests)  # A's send is under way
            running_rival = asyncio.create_task(rival.run())  # another replica
            try:
                sent = await eventually(
                    lambda: store.fetch("SELECT 1 FROM resends WHERE state = 'sent'")
                )
            finally:
                box.stop()
                rival.stop()
                await asyncio.gather(running_box, running_rival)
                await client.aclose()
    finally:
        await store.close()
    assert sent
    assert "in flight when its worker died" not in caplog.text
    assert len(fake.sends) == 1


async def test_a_failing_text_lookup_waits_before_the_next_try(tmp_path) -> None:
    """A text lookup that raises leaves the resend scheduled, due again in 30 s with the
    error as its reason, instead of failing on every pass of the outbox."""
    settings = make_settings(tmp_path, mta_api_key=Secret(API_KEY))
    store = SqliteStore(settings.database_url)
    await store.open()
    calls: list[str] = []

    async def broken(original: str) -> str:
        calls.append(original)
        raise RuntimeError("CRM down")

    try:
        metrics = Metrics()
        client = mta_client(settings, metrics, store)
        box = Outbox(
            store,
            {"default": Sender(client)},
            settings,
            metrics,
            text_lookup=broken,
            clock=lambda: 1_000.0,
        )
        await schedule_resend(store, "77", at=1_000.0)
        await box.run_once()
        await box.run_once()
        await client.aclose()
        rows = await store.fetch("SELECT state, due_at, reason FROM resends")
    finally:
        await store.close()
    assert calls == ["77"]
    assert rows == [("scheduled", 1_030.0, "error: RuntimeError: CRM down")]


async def text_of_default(original: str) -> str:
    """A text lookup of the single-account kind: it cannot tell accounts apart."""
    return f"text of {original}"


async def test_a_text_lookup_is_asked_in_the_resends_account(tmp_path) -> None:
    """A lookup that takes ``account`` is asked for brand-b's message 77 as brand-b's
    (message ids repeat across accounts); a one-argument lookup still works."""
    store = SqliteStore(make_settings(tmp_path).database_url)
    await store.open()
    asked: list[tuple[str, str]] = []

    async def per_account(original: str, account: str) -> str:
        asked.append((original, account))
        return f"{account}'s text of {original}"

    try:
        ours = await original_text(store, "77", per_account, "brand-b")
        plain = await original_text(store, "77", text_of_default)
    finally:
        await store.close()
    assert (ours, asked) == ("brand-b's text of 77", [("77", "brand-b")])
    assert plain == "text of 77"


def test_an_accounts_file_refuses_a_lookup_without_account(tmp_path) -> None:
    """With several accounts a lookup that cannot be told the account would return one
    account's text for another's message 77: start-up refuses it, naming the fix."""
    brand = Account("brand-b", (Secret("b" * 64),), mta_api_key=Secret(API_KEY))
    settings = make_settings(
        tmp_path,
        file_accounts=(brand,),
        fallback_text_lookup="tests.fallback.test_fallback:text_of_default",
    )
    with pytest.raises(ConfigError, match=r"RECEIVER_FALLBACK_TEXT_LOOKUP .*account"):
        wiring.outbox(settings, SqliteStore(settings.database_url), {}, Metrics())
    alone = dataclasses.replace(settings, file_accounts=())
    assert wiring.outbox(alone, SqliteStore(alone.database_url), {}, Metrics()) is not None


async def test_outbox_lines_name_the_resends_account(tmp_path, caplog) -> None:
    """Message ids repeat across accounts: the outbox's line about brand-b's resend of 77
    carries the account (which `resends send 77 --account` an operator needs)."""
    settings = make_settings(tmp_path)
    store = SqliteStore(settings.database_url)
    await store.open()
    try:
        box = Outbox(store, {}, settings, Metrics(), clock=lambda: 1_000.0)
        await schedule_resend(store, "77", at=1_000.0, account="brand-b")
        with caplog.at_level(logging.INFO, "receiver.outbox"):
            await box.run_once()
    finally:
        await store.close()
    lines = [(r.getMessage(), getattr(r, "account", None)) for r in caplog.records]
    assert ("resend of 77: skipped (account_not_configured)", "brand-b") in lines
