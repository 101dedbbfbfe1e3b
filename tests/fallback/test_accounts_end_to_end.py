"""Two MTA accounts in one deployment, end to end (docs/accounts.md): the receiver over
HTTP with an accounts file's two accounts, one fake MTA that knows both API keys and keeps
their sends, records and send-rate windows apart, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from receiver import Context, Event
from receiver.accounts import Account
from receiver.dispatch.loader import build_registry
from receiver.fake_mta import FakeMTA, TimelineMessage, play_timeline, running_fake_mta
from receiver.mta import Rate
from receiver.settings import Secret

from ..conftest import Server, make_settings, running, signed_headers, wait_for
from ..pg import BACKENDS, empty_database_sync
from ..pg import query as pg_query

KEYS = {"brand-a": "key-of-brand-a", "brand-b": "key-of-brand-b"}
SECRETS = {"brand-a": "a" * 32 + "-secret-of-brand-a", "brand-b": "b" * 32 + "-secret-of-brand-b"}
LONGCODES = {"brand-a": "1001", "brand-b": "2002"}
PHONE = "+15551230000"
_ids = itertools.count(7000)
FAST = Rate(1000, 1.0)


@dataclass
class TwoAccounts:
    server: Server
    fake: FakeMTA
    database_url: str
    seen_by_b_only: list[tuple[str, str | None, int | None]]

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.database_url.startswith("sqlite"):
            return self.server.query(sql, params)
        return pg_query(self.database_url, sql.replace("?", "$1"), *params)

    def play(self, account: str, message_id: int, steps: list[int], secret: str = "") -> None:
        message = TimelineMessage(
            message_id,
            PHONE,
            text=f"Your code from {account}",
            external_id=f"order-{message_id}",
            sender_name="Acme",
        )
        url = f"{self.server.url}/webhooks/mta/{account}"
        results = asyncio.run(play_timeline(url, secret or SECRETS[account], message, steps))
        assert all(r.ok for r in results), results

    def resends(self) -> list[tuple[str, str, str]]:
        return sorted(
            (str(a), str(m), str(s))
            for a, m, s in self.rows("SELECT account, original_message_id, state FROM resends")
        )


@contextlib.contextmanager
def two_accounts(
    backend: str, tmp_path: Path, *, rate: Rate = FAST, opt_out_scope: str = "account"
) -> Iterator[TwoAccounts]:
    """Both accounts served (from a file, no environment account), each with its own key
    and longcode; a handler limited to brand-b records what it sees."""
    fake = FakeMTA(list(KEYS.values()), rate_limit=rate.count, rate_window=rate.seconds)
    with running_fake_mta(fake) as base_url, empty_database_sync(backend, tmp_path) as url:
        accounts = tuple(
            Account(
                name,
                (Secret(SECRETS[name]),),
                Secret(KEYS[name]),
                base_url,
                fallback_longcode_id=LONGCODES[name],
                fallback_grace_seconds=0.2,
            )
            for name in KEYS
        )
        settings = make_settings(
            tmp_path,
            webhook_secrets=(),
            file_accounts=accounts,
            database_url=url,
            mta_send_rate=rate,
            mta_timeout=2.0,
            opt_out_scope=opt_out_scope,
        )
        registry = build_registry([])
        seen: list[tuple[str, str | None, int | None]] = []

        @registry.on("delivery-status", account="brand-b")
        async def only_brand_b(event: Event, ctx: Context) -> None:
            seen.append((event.account, event.message_id, event.status))

        with running(settings, registry) as server:
            yield TwoAccounts(server, fake, url, seen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_message_id_in_two_accounts_is_two_messages(backend: str, tmp_path) -> None:
    """One messageId fails in both accounts: each is dispatched, each gets its one SMS
    resend, sent with its own account's key and longcode; histories replayed change
    nothing; a handler limited to brand-b sees brand-b's events only."""
    mid = next(_ids)
    with two_accounts(backend, tmp_path) as s:
        s.play("brand-a", mid, [3, 6])
        s.play("brand-b", mid, [3, 6])
        wait_for(
            lambda: s.resends() == [("brand-a", str(mid), "sent"), ("brand-b", str(mid), "sent")]
        )
        # MTA sends the histories again (the send webhook too): duplicates only.
        s.play("brand-a", mid, [3, 6])
        s.play("brand-b", mid, [6])
        wait_for(lambda: not s.rows("SELECT 1 FROM events WHERE state = 'pending'"))
        events = s.rows(
            "SELECT account, COUNT(*), SUM(duplicates) FROM events"
            " GROUP BY account ORDER BY account"
        )
        # Each: its send and two statuses, once; brand-a's three again, brand-b's two.
        assert events == [("brand-a", 3, 3), ("brand-b", 3, 2)]
        assert s.resends() == [("brand-a", str(mid), "sent"), ("brand-b", str(mid), "sent")]

    sends = {send.api_key: send.body for send in s.fake.sends}
    assert sorted(sends) == sorted(KEYS.values())  # one each, with each account's key
    for account, key in KEYS.items():
        body = sends[key]
        assert str(body["longcodeId"]) == LONGCODES[account]
        assert body["message"] == f"Your code from {account}"
    assert sends[KEYS["brand-a"]]["externalId"] == f"order-{mid}.sms-fallback.brand-a.{mid}"
    assert sends[KEYS["brand-b"]]["externalId"] == f"order-{mid}.sms-fallback.brand-b.{mid}"
    assert sorted(s.seen_by_b_only) == [("brand-b", str(mid), 3), ("brand-b", str(mid), 6)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_body_signed_for_one_account_is_refused_by_the_other(backend: str, tmp_path) -> None:
    """brand-a's signature on brand-b's URL is 401 and stores nothing; there is no
    default account, so /webhooks/mta is 404."""
    with two_accounts(backend, tmp_path) as s:
        body = b'{"messageId": 1, "status": 6}'

        cross = s.server.client.post(
            "/webhooks/mta/brand-b", content=body, headers=signed_headers(body, SECRETS["brand-a"])
        )
        default = s.server.client.post(
            "/webhooks/mta", content=body, headers=signed_headers(body, SECRETS["brand-a"])
        )
        own = s.server.client.post(
            "/webhooks/mta/brand-a", content=body, headers=signed_headers(body, SECRETS["brand-a"])
        )
        assert (cross.status_code, default.status_code, own.status_code) == (401, 404, 200)
        assert s.rows("SELECT account FROM events") == [("brand-a",)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_account_sends_within_its_own_rate_window(backend: str, tmp_path) -> None:
    """MTA's send limit is per account: with 2 sends per minute each, two failures in
    each account all go out at once (one shared window would hold two of them back for
    a minute), and MTA refuses none."""
    with two_accounts(backend, tmp_path, rate=Rate(2, 60.0)) as s:
        for account in KEYS:
            for _ in range(2):
                s.play(account, next(_ids), [3, 6])
        wait_for(lambda: len(s.fake.sends) == 4, timeout=20)
        assert s.fake.rate_limit_violations == 0
    by_key = sorted(send.api_key for send in s.fake.sends)
    assert by_key == sorted([*KEYS.values(), *KEYS.values()])


@pytest.mark.parametrize(("scope", "outcome"), [("account", "sent"), ("global", "skipped")])
def test_a_stop_in_one_account_stops_resends_of_the_other_only_when_global(
    scope: str, outcome: str, tmp_path
) -> None:
    """A STOP reply to brand-a: brand-b still resends to that number by default
    (the subscriber opted out of brand-a), and does not with RECEIVER_OPT_OUT_SCOPE=global."""
    with two_accounts("sqlite", tmp_path, opt_out_scope=scope) as s:
        reply = json.dumps(
            {"type": "message-reply", "fromNumber": PHONE, "message": "STOP", "replyId": "r-1"}
        ).encode()
        stop = s.server.client.post(
            "/webhooks/mta/brand-a",
            content=reply,
            headers=signed_headers(reply, SECRETS["brand-a"]),
        )
        assert stop.status_code == 200
        wait_for(lambda: not s.rows("SELECT 1 FROM events WHERE state = 'pending'"))
        mid = next(_ids)
        s.play("brand-b", mid, [3, 6])
        wait_for(lambda: s.resends() == [("brand-b", str(mid), outcome)])
    assert len(s.fake.sends) == (1 if outcome == "sent" else 0)
