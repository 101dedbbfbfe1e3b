"""Several MTA accounts in one store (docs/accounts.md), on both backends: the account is
part of every event's identity, message state, resend and opt-out; and a database filled
before accounts existed keeps all of it, as the default account's."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receiver.mta.events import DEFAULT_ACCOUNT
from receiver.store import DONE, Completion, ResendState, Store
from receiver.store.migrate import migrations
from receiver.store.resends import STOP_REPLY
from receiver.web.incoming import incoming_from

from ..conftest import delivery, encode
from ..pg import BACKENDS, empty_database, opened_store
from .test_store import LEASE, NOW, T0

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def body(**fields: Any) -> bytes:
    return encode(delivery(**fields))


async def test_same_message_id_in_two_accounts_is_two_messages(store: Store) -> None:
    """The same body in two accounts: two events, two message states, neither a duplicate."""
    same = body(message_id=555, status=1)
    first = await store.ingest(incoming_from(same, T0, 0))
    other = await store.ingest(incoming_from(same, T0 + 1, 0, account="brand-b"))
    again = await store.ingest(incoming_from(same, T0 + 2, 0, account="brand-b"))

    assert (first.duplicate, other.duplicate) == (False, False)
    assert other.event_id != first.event_id
    assert (again.event_id, again.duplicate) == (other.event_id, True)
    rows = await store.fetch("SELECT id, account FROM events ORDER BY id")
    assert rows == [(first.event_id, DEFAULT_ACCOUNT), (other.event_id, "brand-b")]
    delivered = body(message_id=555, status=4)
    await store.ingest(incoming_from(delivered, T0 + 3, 0, account="brand-b"))
    mine, theirs = await store.message_state("555"), await store.message_state("555", "brand-b")
    assert mine is not None
    assert mine.status == 1
    assert theirs is not None
    assert theirs.status == 4
    assert await store.message_state("555", "brand-c") is None


async def test_receipt_order_holds_per_account_not_across(store: Store) -> None:
    """A pending event blocks later events of its own message in its own account only."""
    await store.ingest(incoming_from(body(message_id=7, status=4), T0, 0))
    await store.ingest(incoming_from(body(message_id=7, status=1), T0 + 1, 0))
    await store.ingest(incoming_from(body(message_id=7, status=4), T0 + 2, 0, account="b"))

    claimed = await store.claim("w", 10, LEASE, now=NOW)

    assert [(c.account, json.loads(c.body)["status"]) for c in claimed] == [
        (DEFAULT_ACCOUNT, 4),
        ("b", 4),
    ]
    await store.complete("w", [Completion(claimed[0].id, DONE, NOW, ())], now=NOW)
    [later] = await store.claim("w", 10, LEASE, now=NOW)
    assert (later.account, json.loads(later.body)["status"]) == (DEFAULT_ACCOUNT, 1)


async def schedule(store: Store, original: str, account: str, phone: str = "+15550001111") -> bool:
    return await store.resends.schedule(
        original_message_id=original,
        phone=phone,
        tags={},
        original_external_id="order-1",
        failure_status=6,
        failed_at=T0,
        due_at=T0,
        now=T0,
        account=account,
    )


async def test_resends_are_one_per_message_per_account(store: Store) -> None:
    """Each account gets the one resend of its own message 42; each is cancelled by its
    own account's DELIVERED only; their externalIds differ."""
    assert await schedule(store, "42", DEFAULT_ACCOUNT)
    assert await schedule(store, "42", "brand-b")
    assert not await schedule(store, "42", "brand-b")

    ours, theirs = await store.resends.get("42"), await store.resends.get("42", "brand-b")
    assert ours is not None
    assert theirs is not None
    assert (ours.account, theirs.account) == (DEFAULT_ACCOUNT, "brand-b")
    assert ours.external_id != theirs.external_id
    assert await store.resends.original_delivered("42", T0 + 1, account="brand-b") == (
        ResendState.CANCELLED
    )
    ours = await store.resends.get("42")
    assert ours is not None
    assert ours.state == ResendState.SCHEDULED
    due = await store.resends.claim_due("outbox", T0 + 5, 60.0, 10)
    assert [(r.account, r.original_message_id) for r in due] == [(DEFAULT_ACCOUNT, "42")]
    found = await store.resends.find_by_resend(ours.external_id, None)
    assert found is not None
    assert found.account == DEFAULT_ACCOUNT
    assert await store.resends.find_by_resend(ours.external_id, None, "brand-b") is None


async def test_opt_outs_are_per_account_unless_asked_globally(store: Store) -> None:
    """A STOP in one account stops nothing in another, except when asked across accounts
    (RECEIVER_OPT_OUT_SCOPE=global); a START lifts only its own account's STOP."""
    await store.resends.opt_out("+15550001111", STOP_REPLY, T0, "brand-b")

    assert await store.resends.opted_out("+15550001111", "brand-b")
    assert not await store.resends.opted_out("+15550001111")
    assert await store.resends.opted_out("+15550001111", None)
    assert not await store.resends.opt_in("+15550001111", T0 + 1)
    assert await store.resends.opt_in("+15550001111", T0 + 1, "brand-b")
    assert not await store.resends.opted_out("+15550001111", None)


# --- a database filled before accounts existed -----------------------------------------

_ACCOUNTS_VERSION = {"sqlite": 5, "postgres": 7}
# (statement, its one parameter): one row in each table keyed by message or phone, as
# the previous release wrote them; ``?`` is the status body, the send body or nothing.
_OLD_ROWS: list[tuple[str, str | None]] = [
    (
        "INSERT INTO events (dedup_key, type, name, message_id, status, phone, received_at,"
        " secret_index, body, state, run_after) VALUES ('{key}', 'delivery-status',"
        " 'delivery-status.failed', '900', 6, '+15550001111', 1.0, 0, ?, 'pending', 1.0)",
        "status",
    ),
    (
        "INSERT INTO events (dedup_key, type, name, message_id, received_at, secret_index,"
        " body, state, run_after) VALUES ('ms:900', 'message-send', 'message-send', '900',"
        " 0.5, 0, ?, 'done', 0.5)",
        "send",
    ),
    (
        "INSERT INTO messages (message_id, status, status_rank, status_at, first_seen, phone,"
        " sender_name) VALUES ('900', 6, 5, 1.0, 0.5, '+15550001111', 'Brand')",
        None,
    ),
    (
        "INSERT INTO resends (original_message_id, state, phone, tags, external_id,"
        " request_id, failure_status, failed_at, due_at, updated_at) VALUES ('900',"
        " 'scheduled', '+15550001111', '{{}}', 'mta.sms-fallback.900', 'r1', 6, 1.0, 301.0,"
        " 1.0)",
        None,
    ),
    ("INSERT INTO opt_outs (phone, source, at) VALUES ('+15550002222', 'stop_reply', 1.0)", None),
    (
        "INSERT INTO sent_messages (message_id, phone, text, sent_at) VALUES ('901',"
        " '+15550003333', 'Hello', 1.0)",
        None,
    ),
    (
        "INSERT INTO backfill_runs (cause, since, until, started_at, finished_at, rows_read,"
        " held, stored, unreadable) VALUES ('manual', 'a', 'b', 1.0, 2.0, 3, 0, 3, 0)",
        None,
    ),
]
_MIGRATIONS_TABLE = (
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at {real} NOT NULL)"
)


async def _fill_previous_release(backend: str, url: str) -> None:
    """Every migration before accounts, then `_OLD_ROWS`."""
    older = [m for m in migrations(backend) if m.version < _ACCOUNTS_VERSION[backend]]
    status = encode(delivery(message_id=900, status=6))
    params = {"status": status, "send": b'{"messageId": 900}'}
    # The key the previous release computed: unprefixed (the default account's keys are).
    key = incoming_from(status, 1.0, 0).dedup_key
    assert key.startswith("ds:900:6")
    rows = [(sql.format(key=key), () if p is None else (params[p],)) for sql, p in _OLD_ROWS]
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute(_MIGRATIONS_TABLE.format(real="REAL"))
        for migration in older:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        for sql, values in rows:
            conn.execute(sql, values)
        conn.commit()
        conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        await pg.execute(_MIGRATIONS_TABLE.format(real="DOUBLE PRECISION"))
        for migration in older:
            await pg.execute(migration.sql)
            await pg.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                migration.version,
                migration.name,
            )
        for sql, values in rows:
            await pg.execute(sql.replace("?", "$1"), *values)
    finally:
        await pg.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_single_account_database_migrates_to_the_default_account(
    backend: str, tmp_path: Path
) -> None:
    """A database of the previous release opens with every row kept, all of them the
    default account's, read back by the new code; another account's same ids are new."""
    async with empty_database(backend, tmp_path) as url:
        await _fill_previous_release(backend, url)
        async with opened_store(url) as store:
            state = await store.message_state("900")
            assert state is not None
            assert (state.status, state.sender_name) == (6, "Brand")
            resend = await store.resends.get("900")
            assert resend is not None
            assert resend.account == DEFAULT_ACCOUNT
            assert resend.state == ResendState.SCHEDULED
            assert await store.resends.opted_out("+15550002222")
            assert await store.resends.sent_message("901") == ("Hello", None)
            assert await store.resends.send_event_body("900") == b'{"messageId": 900}'
            [claimed] = await store.claim("w", 10, LEASE, now=NOW)
            assert (claimed.message_id, claimed.account) == ("900", DEFAULT_ACCOUNT)
            # The old dedup keys still deduplicate the default account's webhooks...
            same = encode(delivery(message_id=900, status=6))
            again = await store.ingest(incoming_from(same, NOW, 0))
            assert (again.event_id, again.duplicate) == (claimed.id, True)
            # ...and the same message in another account is its own.
            other = await store.ingest(incoming_from(same, NOW, 0, account="brand-b"))
            assert not other.duplicate
            assert await schedule(store, "900", "brand-b")
            rows = await store.fetch("SELECT account, COUNT(*) FROM backfill_runs GROUP BY account")
            assert rows == [(DEFAULT_ACCOUNT, 1)]


async def test_deliveries_of_one_id_in_two_accounts_at_once_cancel_each_its_own(
    store: Store,
) -> None:
    """DELIVERED of message 42 in both accounts, handled together (PostgreSQL gathers one
    loop iteration's calls into one statement): each cancels its own account's resend."""

    assert await schedule(store, "42", DEFAULT_ACCOUNT)
    assert await schedule(store, "42", "brand-b")
    assert await schedule(store, "43", "brand-b")

    outcomes = await asyncio.gather(
        store.resends.original_delivered("42", T0 + 1),
        store.resends.original_delivered("42", T0 + 1, account="brand-b"),
        store.resends.original_delivered("43", T0 + 1, account="brand-c"),
    )

    assert outcomes == [ResendState.CANCELLED, ResendState.CANCELLED, None]
    left = await store.resends.get("43", "brand-b")
    assert left is not None
    assert left.state == ResendState.SCHEDULED
