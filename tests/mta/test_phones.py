"""Subscriber numbers: chosen per event type, E.164 before any key, opt-outs and opt-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver import ConfigError, Context, Event
from receiver.mta.events import dedup_key, identify
from receiver.mta.phones import e164
from receiver.settings import Settings
from receiver.store import Store
from receiver.store.resends import Resends

from ..conftest import Recorder, running, wait_for
from ..fallback.test_fallback import PHONE, fallback

OUR_NUMBER = "+15559990000"


@pytest.mark.parametrize(
    ("number", "country", "expected"),
    [
        ("5551234567", "1", "+15551234567"),
        ("(555) 123-4567", "1", "+15551234567"),
        ("15551234567", "1", "+15551234567"),
        ("+1 555 123 4567", "1", "+15551234567"),
        ("07911 123456", "44", "+447911123456"),
        ("447911123456", "44", "+447911123456"),
        ("0044 7911 123456", "1", "+447911123456"),
        ("+44 7911 123456", "1", "+447911123456"),
        (" Someone@Example.com ", "1", "someone@example.com"),
    ],
)
def test_numbers_are_normalised_to_e164(number: str, country: str, expected: str) -> None:
    """National and international spellings of one number give one E.164 string."""
    assert e164(number, country) == expected


def test_default_country_code_is_configurable() -> None:
    """RECEIVER_DEFAULT_COUNTRY_CODE sets the country of national numbers; junk is refused."""
    env = {
        "RECEIVER_WEBHOOK_SECRETS": "a-secret-of-24-characters",
        "RECEIVER_DEFAULT_COUNTRY_CODE": "+44",
    }
    settings = Settings.from_env(env)
    assert settings.default_country_code == "44"
    reply = {"type": "message-reply", "fromNumber": "07911123456", "message": "hi"}
    assert identify(reply, country=settings.default_country_code).phone == "+447911123456"
    with pytest.raises(ConfigError, match="RECEIVER_DEFAULT_COUNTRY_CODE"):
        Settings.from_env({**env, "RECEIVER_DEFAULT_COUNTRY_CODE": "uk"})


@pytest.mark.parametrize(
    ("payload", "phone"),
    [
        # A reply's subscriber is fromNumber, else originationNumber; never our number.
        ({"fromNumber": "5551234567", "toNumber": OUR_NUMBER}, "+15551234567"),
        ({"originationNumber": "5551234567", "destinationNumber": OUR_NUMBER}, "+15551234567"),
        ({"destinationNumber": OUR_NUMBER, "toNumber": OUR_NUMBER}, None),
    ],
)
def test_reply_subscriber_is_the_sender(payload: dict[str, str], phone: str | None) -> None:
    """A message-reply's phone is fromNumber/originationNumber, never toNumber/destination."""
    assert identify({**payload, "message": "STOP"}, "message-reply").phone == phone


def test_delivery_status_and_opt_in_subscribers() -> None:
    """delivery-status reads destinationNumber; number-opt-in tries the reply keys."""
    status = {"destinationNumber": "5551234567", "fromNumber": OUR_NUMBER, "status": 4}
    assert identify({**status, "messageId": 1}, "delivery-status").phone == "+15551234567"
    opt_in = {"originationNumber": "5551234567", "destinationNumber": OUR_NUMBER}
    assert identify({**opt_in, "optInType": "keyword"}, "number-opt-in").phone == "+15551234567"


def test_replies_without_reply_id_dedup_on_who_what_when() -> None:
    """No replyId: (subscriber, our number, text, timestamp) is the identity, whatever the
    spelling of the numbers; another time or text is another reply; no time, the body."""
    reply = {
        "fromNumber": "5551234567",
        "toNumber": OUR_NUMBER,
        "message": "YES",
        "timestamp": "2026-12-05T10:00:00Z",
    }

    def key(payload: dict[str, str]) -> str:
        return dedup_key(identify(payload, "message-reply"), repr(payload).encode())

    same = {**reply, "fromNumber": "+1 555 123 4567", "tags": "x"}
    assert key(reply) == key(same)
    assert key(reply).startswith("mr:h:")
    assert key({**reply, "timestamp": "2026-12-05T10:01:00Z"}) != key(reply)
    assert key({**reply, "message": "NO"}) != key(reply)
    untimed = {k: v for k, v in reply.items() if k != "timestamp"}
    assert key(untimed).startswith("h:")
    assert key({**reply, "replyId": "77"}) == "mr:77"


def test_reply_dedup_through_http(settings: Settings, recorder: Recorder) -> None:
    """Two POSTs of one id-less reply in different spellings reach handlers once."""

    @recorder.registry.on("message-reply")
    async def reply(event: Event, ctx: Context) -> None:
        recorder.record("reply", event)

    body = {"type": "message-reply", "toNumber": OUR_NUMBER, "message": "hi", "timestamp": 1}
    with running(settings, recorder.registry) as server:
        assert server.post({**body, "fromNumber": "5551234567"}).status_code == 200
        assert server.post({**body, "fromNumber": "+15551234567"}).status_code == 200
        wait_for(lambda: server.query("SELECT 1 FROM events WHERE state = 'done'"))
        assert len(server.query("SELECT 1 FROM events")) == 1
    assert [e.phone for e in recorder.seen("reply")] == ["+15551234567"]


def _reply(text: str, reply_id: int, **numbers: str) -> dict[str, object]:
    return {"type": "message-reply", "replyId": reply_id, "message": text, **numbers}


def test_stop_in_aws_spelling_opts_out_the_subscriber_not_our_number(tmp_path: Path) -> None:
    """A STOP with originationNumber/destinationNumber (national) blocks the subscriber's
    resend, and leaves our own number alone."""
    with fallback(tmp_path) as s:
        stop = _reply("STOP", 1, originationNumber=PHONE[2:], destinationNumber=OUR_NUMBER)
        assert s.server.post(stop).status_code == 200
        s.settled()
        keys = [row[0] for row in s.server.query("SELECT phone FROM opt_outs")]
        assert keys == [PHONE]
        row = s.wait_state(s.play([3, 6]), "skipped")
    assert row["reason"] == "opted_out"
    assert s.fake.sends == []


def test_number_opt_in_never_lifts_a_stop(tmp_path: Path) -> None:
    """After STOP, an iMessage number-opt-in leaves the opt-out: no SMS resend."""
    with fallback(tmp_path) as s:
        assert s.server.post(_reply("stop", 2, fromNumber=PHONE)).status_code == 200
        opt_in = {"type": "number-opt-in", "optInType": "keyword", "fromNumber": PHONE}
        assert s.server.post(opt_in).status_code == 200
        s.settled()
        row = s.wait_state(s.play([3, 6]), "skipped")
    assert row["reason"] == "opted_out"
    assert s.fake.sends == []


def test_start_reply_lifts_a_stop_reply(tmp_path: Path) -> None:
    """STOP then START (as a reply): the next failed iMessage is resent."""
    with fallback(tmp_path) as s:
        assert s.server.post(_reply("STOP", 3, fromNumber=PHONE)).status_code == 200
        s.settled()
        assert s.server.post(_reply("Unstop", 4, fromNumber=PHONE[2:])).status_code == 200
        s.settled()
        s.wait_state(s.play([3, 6]), "sent")
    assert len(s.fake.sends) == 1


async def test_status_11_is_never_lifted(store: Store) -> None:
    """START lifts a STOP reply, never a status 11, even one a later STOP reply repeats."""
    resends = Resends(store)
    await resends.opt_out("5550001111", "stop_reply", 1.0)
    assert await resends.opted_out("+15550001111")
    assert await resends.opt_in("+1 555 000 1111", 1.5)
    assert not await resends.opted_out("5550001111")
    await resends.opt_out(PHONE, "status_11", 2.0)
    await resends.opt_out(PHONE, "stop_reply", 3.0)
    assert not await resends.opt_in(PHONE, 4.0)
    assert await resends.opted_out(PHONE)


async def test_a_start_older_than_the_stop_does_not_lift_it(store: Store) -> None:
    """A START sent before the STOP but handled after it (a retry, a backlog) lifts
    nothing; a START sent after the STOP does; the latest of two STOPs counts."""
    resends = Resends(store)
    await resends.opt_out(PHONE, "stop_reply", 100.0)
    await resends.opt_out(PHONE, "stop_reply", 50.0)  # an older STOP arriving late
    assert not await resends.opt_in(PHONE, 90.0)
    assert await resends.opted_out(PHONE)
    assert await resends.opt_in(PHONE, 101.0)
    assert not await resends.opted_out(PHONE)


async def test_opt_outs_stored_by_older_versions_still_count(store: Store) -> None:
    """An opt-out keyed the old way (national digits) still blocks, on both backends."""
    await store.execute(
        "INSERT INTO opt_outs (phone, source, at) VALUES (?, ?, ?)",
        ("5551230000", "stop_reply", 0.0),
    )
    resends = Resends(store)
    assert await resends.opted_out(PHONE)
    assert await resends.opted_out("(555) 123-0000")
    assert await resends.opt_in(PHONE, 1.0)
    assert not await resends.opted_out(PHONE)
