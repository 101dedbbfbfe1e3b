"""Reading payloads: `payload.parse`, `events.normalize`, `events.dedup_key`, `statuses.rank`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from receiver.errors import PayloadError
from receiver.mta.events import Event, dedup_key, normalize
from receiver.mta.payload import parse
from receiver.mta.statuses import (
    DELIVERED,
    DELIVERY_UNCONFIRMED,
    FAILURES,
    QUEUED,
    SENDING,
    SENT,
    STOPPED_NUMBER,
    UNDELIVERED,
    rank,
)

# A delivery-status body with every V1 field docs/mta.md lists ("delivery-status").
DOCUMENTED = (
    b'{"destinationNumber":"5551234567","messageId":912345,"externalId":"order-77","status":6,'
    b'"tags":{"campaign":"spring"},"senderName":"Acme","type":"delivery-status"}'
)
NOW = 1_700_000_000.0


def read(body: bytes | dict[str, Any], hinted: str | None = None) -> Event:
    """Parse and normalize a body, as intake does."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return normalize(parse(raw), NOW, hinted)


def key(payload: dict[str, Any], hinted: str | None = None) -> str:
    """The dedup key of a payload given as a dict."""
    raw = json.dumps(payload).encode()
    return dedup_key(normalize(parse(raw), NOW, hinted), raw)


def body_hash(payload: dict[str, Any]) -> str:
    """SHA-256 hex of the payload's JSON bytes, as `key` encodes them."""
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


# --- normalize ---------------------------------------------------------------------------


def test_documented_delivery_status_example_fills_every_field() -> None:
    """docs/mta.md's example delivery-status body maps onto every field of `Event`."""
    event = read(DOCUMENTED)
    assert event.type == "delivery-status"
    assert event.name == "delivery-status.delivery-failed"
    assert event.received_at == NOW
    assert event.status == 6
    assert event.status_name == "delivery-failed"
    assert event.message_id == "912345"
    assert event.external_id == "order-77"
    assert event.phone == "+15551234567"
    assert event.tags == {"campaign": "spring"}
    assert event.sender_name == "Acme"
    assert event.reply_id is None
    assert event.text is None
    assert event.id is None
    assert event.raw == json.loads(DOCUMENTED)


def test_event_is_frozen() -> None:
    """Handlers share one `Event`: none can change a field under another."""
    event = read(DOCUMENTED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = 4  # type: ignore[misc]


def test_inferred_type_prefers_reply_fields() -> None:
    """Without a type, a body with a replyId is a reply even if it carries messageId and
    status: only a delivery-status's status is an MTA status code."""
    event = read({"replyId": 3, "messageId": 70, "status": 4, "fromNumber": "+15550001111"})
    assert (event.type, event.status, event.status_name) == ("message-reply", None, None)
    assert read({"messageId": 70, "status": 4}).name == "delivery-status.delivered"


def test_delivered_status_refines_the_name() -> None:
    """Status 4 is named delivery-status.delivered."""
    event = read({"type": "delivery-status", "messageId": 1, "status": 4})
    assert (event.status_name, event.name) == ("delivered", "delivery-status.delivered")


def test_unknown_status_code_is_kept_and_named_unknown() -> None:
    """A code MTA added after us (42) is kept as 42, named unknown, and does not crash."""
    event = read({"type": "delivery-status", "messageId": 1, "status": 42})
    assert event.status == 42
    assert event.status_name == "unknown"
    assert event.name == "delivery-status.unknown"


@pytest.mark.parametrize("absent", ["missing", "null"])
def test_optional_fields_may_be_missing_or_null(absent: str) -> None:
    """externalId, tags and senderName may be absent or null: they read as empty, no crash."""
    payload: dict[str, Any] = {"destinationNumber": "5551234567", "messageId": 7, "status": 3}
    payload["type"] = "delivery-status"
    if absent == "null":
        payload.update(externalId=None, tags=None, senderName=None)
    event = read(payload)
    assert (event.external_id, event.tags, event.sender_name) == (None, {}, None)
    assert (event.message_id, event.status_name) == ("7", "sent")


def test_null_status_and_id_still_normalize() -> None:
    """A delivery-status with null status and messageId normalizes with name ...unknown."""
    event = read({"type": "delivery-status", "messageId": None, "status": None})
    assert (event.status, event.message_id, event.name) == (None, None, "delivery-status.unknown")


def test_wrapping_data_object_is_unwrapped() -> None:
    """Fields under a top-level `data` object are read; raw keeps the wrapper."""
    payload = {"data": json.loads(DOCUMENTED)}
    event = read(payload)
    assert (event.type, event.message_id, event.status) == ("delivery-status", "912345", 6)
    assert event.phone == "+15551234567"
    assert event.raw == payload


def test_non_object_data_is_ignored() -> None:
    """A `data` that is not an object leaves the top-level fields in charge."""
    event = read({"data": [1, 2], "type": "delivery-status", "messageId": 5, "status": 4})
    assert (event.message_id, event.name) == ("5", "delivery-status.delivered")


def test_type_hint_wins_over_the_body() -> None:
    """The ?event= hint decides the type even when the body names another."""
    assert read(DOCUMENTED, hinted="message-reply").type == "message-reply"


def test_unknown_hint_falls_back_to_the_body() -> None:
    """A hint that is not an MTA event type is ignored in favour of the body's type."""
    assert read(DOCUMENTED, hinted="bogus").type == "delivery-status"


@pytest.mark.parametrize(
    "spelling", ["delivery-status", "delivery_status", "DELIVERY_STATUS", "deliverystatus"]
)
def test_body_type_spellings_map_to_our_name(spelling: str) -> None:
    """The undocumented literal of `type` is accepted in its known spellings."""
    event = read({"type": spelling, "messageId": 1, "status": 4})
    assert event.type == "delivery-status"


def test_body_event_field_names_the_type_when_type_is_absent() -> None:
    """A body with `event` instead of `type` is read by it."""
    assert read({"event": "number-opt-in", "number": "+15550001111"}).type == "number-opt-in"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"messageId": 1, "status": 4}, "delivery-status"),
        ({"replyId": 9, "message": "hi"}, "message-reply"),
        ({"fromNumber": "+15550001111", "message": "hi"}, "message-reply"),
        ({"optInType": "keyword", "number": "+15550001111"}, "number-opt-in"),
        ({"hello": "world"}, "unknown"),
    ],
)
def test_type_is_inferred_when_nothing_names_it(payload: dict[str, Any], expected: str) -> None:
    """Without hint or type field, the type is inferred from the fields present."""
    assert read(payload).type == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(912345, "912345"), ("912345", "912345"), (912345.0, "912345"), ("abc-1", "abc-1")],
)
def test_ids_arrive_as_numbers_or_strings_and_read_as_one_spelling(
    value: object, expected: str
) -> None:
    """messageId as int, numeric string, integral float or opaque string reads as one string."""
    assert read({"type": "delivery-status", "messageId": value, "status": 4}).message_id == expected


@pytest.mark.parametrize("value", [1.5, True, [1], {"a": 1}, ""])
def test_unusable_ids_read_as_none(value: object) -> None:
    """A fractional, boolean, container or empty messageId reads as None, not garbage."""
    assert read({"type": "delivery-status", "messageId": value, "status": 4}).message_id is None


def test_string_and_float_status_codes_read_as_ints() -> None:
    """status "4" and 4.0 read as 4; a boolean is not a status."""
    assert read({"type": "delivery-status", "messageId": 1, "status": "4"}).status == 4
    assert read({"type": "delivery-status", "messageId": 1, "status": 4.0}).status == 4
    assert read({"type": "delivery-status", "messageId": 1, "status": True}).status is None


def test_tags_with_non_string_values_become_strings() -> None:
    """Tag values that are numbers, booleans or objects become strings; nulls are dropped."""
    tags = {"n": 1, "b": True, "f": 1.5, "o": {"x": 1}, "s": "ok", "z": None}
    event = read({"type": "delivery-status", "messageId": 1, "status": 4, "tags": tags})
    assert event.tags == {"n": "1", "b": "True", "f": "1.5", "o": "{'x': 1}", "s": "ok"}
    assert all(isinstance(v, str) for v in event.tags.values())


def test_tags_that_are_not_an_object_read_as_empty() -> None:
    """A `tags` list or string reads as no tags."""
    assert read({"type": "delivery-status", "messageId": 1, "tags": ["a"]}).tags == {}
    assert read({"type": "delivery-status", "messageId": 1, "tags": "a"}).tags == {}


def test_lone_surrogates_do_not_break_normalization() -> None:
    """'\\ud800' in JSON strings yields fields that encode to UTF-8 (database- and log-safe)."""
    body = (
        b'{"type":"message-reply","fromNumber":"\\ud800","replyId":"r\\udc00",'
        b'"message":"hi \\ud83d","externalId":"\\udfff","tags":{"\\ud800":"\\ud800"}}'
    )
    event = read(body)
    texts = [event.phone, event.reply_id, event.text, event.external_id, event.name]
    texts += [*event.tags.keys(), *event.tags.values()]
    for text in texts:
        assert text is not None
        text.encode("utf-8")  # raises UnicodeEncodeError if a surrogate survived
    dedup_key(event, body).encode("utf-8")
    assert event.reply_id is not None
    assert event.reply_id.startswith("r")


def test_message_reply_fields() -> None:
    """A message-reply exposes the sender (fromNumber), replyId and the text."""
    payload = {
        "fromNumber": "+15550001111",
        "toNumber": "+15559998888",
        "message": "STOP",
        "replyId": 4242,
        "timestamp": "2025-01-01T00:00:00Z",
        "tags": {"k": "v"},
        "externalId": "ext-1",
        "type": "message-reply",
    }
    event = read(payload)
    assert (event.type, event.name) == ("message-reply", "message-reply")
    assert (event.phone, event.reply_id, event.text) == ("+15550001111", "4242", "STOP")
    assert (event.external_id, event.tags, event.status, event.status_name) == (
        "ext-1",
        {"k": "v"},
        None,
        None,
    )


def test_number_opt_in_reads_the_subscriber_number() -> None:
    """A number-opt-in exposes the subscriber's number as phone."""
    event = read({"type": "number-opt-in", "optInType": "keyword", "number": "+15550001111"})
    assert (event.type, event.name) == ("number-opt-in", "number-opt-in")
    assert event.phone == "+15550001111"
    assert event.raw["optInType"] == "keyword"


# --- dedup_key -----------------------------------------------------------------------------


def test_delivery_status_key_is_message_and_status() -> None:
    """delivery-status is keyed ds:<messageId>:<status>, whatever else differs."""
    assert key({"type": "delivery-status", "messageId": 9, "status": 4}) == "ds:9:4"
    assert key({"type": "delivery-status", "messageId": "9", "status": 4, "x": 1}) == "ds:9:4"


def test_same_status_twice_has_one_key_and_different_statuses_differ() -> None:
    """The same status resent collides; a message's different statuses do not."""
    first = key({"type": "delivery-status", "messageId": 9, "status": 3})
    again = key({"type": "delivery-status", "messageId": 9, "status": 3, "senderName": "A"})
    later = key({"type": "delivery-status", "messageId": 9, "status": 4})
    assert first == again
    assert first != later


def test_message_send_key_is_the_message_id() -> None:
    """message-send is keyed ms:<messageId>."""
    assert key({"type": "message-send", "messageId": 77, "message": "hi"}) == "ms:77"


def test_message_reply_key_is_the_reply_id() -> None:
    """message-reply is keyed mr:<replyId>."""
    assert key({"type": "message-reply", "replyId": 5, "message": "hi"}) == "mr:5"


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "number-opt-in", "optInType": "keyword", "number": "+15550001111"},
        {"type": "delivery-status", "messageId": 9},  # no status
        {"type": "delivery-status", "status": 4},  # no messageId
        {"type": "message-send", "message": "hi"},  # no messageId
        {"type": "message-reply", "message": "hi"},  # no replyId
        {"hello": "world"},
    ],
)
def test_other_events_are_keyed_by_type_and_body_hash(payload: dict[str, Any]) -> None:
    """Events without their identifying fields are keyed h:<type>:<sha256 of body>."""
    event_type = read(payload).type
    assert key(payload) == f"h:{event_type}:{body_hash(payload)}"


def test_hash_keys_differ_for_different_bodies() -> None:
    """Two different opt-ins get two different keys."""
    one = {"type": "number-opt-in", "optInType": "keyword", "number": "+15550001111"}
    two = {"type": "number-opt-in", "optInType": "keyword", "number": "+15550002222"}
    assert key(one) != key(two)


def test_recipients_of_one_multi_recipient_send_are_not_duplicates() -> None:
    """Two recipients of one send reaching the same status get different dedup keys."""
    alice = {"type": "delivery-status", "messageId": 9, "status": 4, "destinationNumber": "+1555"}
    bob = {**alice, "destinationNumber": "+1666"}
    assert key(alice) != key(bob)


# --- payload.parse ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"", "empty_body", id="empty"),
        pytest.param(b" \r\n\t ", "empty_body", id="whitespace"),
        pytest.param(b'{"a":"\xff"}', "not_utf8", id="latin1-byte"),
        pytest.param(b"\xfe\xff\x00{\x00}", "not_utf8", id="utf16-bom"),
        pytest.param(b"{not json", "invalid_json", id="garbage"),
        pytest.param(b'{"a":1', "invalid_json", id="truncated"),
        pytest.param(b'{"a":1}{"b":2}', "invalid_json", id="two-objects"),
        pytest.param(b"[" * 10_000, "too_deep", id="10000-arrays"),
        pytest.param(b'{"a":' * 10_000, "too_deep", id="10000-objects"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, "too_deep", id="10000-closed"),
        pytest.param(b"[1,2]", "not_an_object", id="array"),
        pytest.param(b'"hello"', "not_an_object", id="string"),
        pytest.param(b"42", "not_an_object", id="number"),
        pytest.param(b"null", "not_an_object", id="null"),
    ],
)
def test_parse_refuses_with_a_short_reason(body: bytes, reason: str) -> None:
    """Every unreadable body raises PayloadError with its reason, never anything else."""
    with pytest.raises(PayloadError) as refused:
        parse(body)
    assert refused.value.reason == reason


def test_parse_returns_the_object() -> None:
    """A JSON object parses to the dict it encodes."""
    assert parse(DOCUMENTED)["messageId"] == 912345


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(DOCUMENTED, id="documented"),
        pytest.param(b'{"a":NaN,"b":Infinity}', id="nan"),
        pytest.param(b'{"text":"\\ud800"}', id="lone-surrogate"),
        pytest.param(b'{"a":1e400}', id="float-overflow"),
        pytest.param(b'{"messageId":123456789012345678901234567890}', id="big-int"),
        pytest.param(b'{"a":1,"a":2}', id="repeated-key"),
        pytest.param(b'{"a":"\\u0000","b":[1.5,-0,true,null]}', id="mixed"),
        pytest.param(b'{"a":' * 500 + b"1" + b"}" * 500, id="500-deep"),
    ],
)
def test_parse_reads_what_the_stdlib_reads(body: bytes) -> None:
    """The fast decoder and its stdlib fallback together accept exactly what json.loads
    accepts, as the same objects (big integers stay integers)."""
    expected = json.loads(body.decode("utf-8"))
    parsed = parse(body)
    assert repr(parsed) == repr(expected)  # repr: NaN != NaN, and int vs float shows


# --- statuses.rank -------------------------------------------------------------------------


def test_rank_orders_progress_codes_forward() -> None:
    """QUEUED < SENDING < SENT < DELIVERY_UNCONFIRMED < any failure < DELIVERED."""
    order = [rank(QUEUED), rank(SENDING), rank(SENT), rank(DELIVERY_UNCONFIRMED)]
    assert order == sorted(order)
    assert len(set(order)) == len(order)
    assert all(rank(DELIVERY_UNCONFIRMED) < rank(code) < rank(DELIVERED) for code in FAILURES)


def test_failures_rank_equal_so_the_first_sticks() -> None:
    """Every failure ranks the same: a later failure never replaces an earlier one."""
    assert len({rank(code) for code in FAILURES}) == 1
    assert rank(UNDELIVERED) == rank(STOPPED_NUMBER)


def test_unknown_and_missing_statuses_rank_lowest() -> None:
    """An unknown code (42) or no status ranks below QUEUED, so it never overrides progress."""
    assert rank(42) == rank(None) < rank(QUEUED)
    assert rank(DELIVERED) > max(rank(code) for code in range(-5, 60) if code != DELIVERED)
