"""The operator's reads and actions limited to one account (docs/accounts.md), on both
backends: an action given an account never touches another account's rows."""

from __future__ import annotations

import pytest

from receiver.mta.events import DEFAULT_ACCOUNT
from receiver.store import DEAD, DONE, Completion, HandlerRun, Store
from receiver.web.incoming import incoming_from

from ..conftest import delivery, encode
from .test_store import LEASE, NOW, T0

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def finished(store: Store, message_id: int, account: str, state: str = DEAD) -> int:
    """An event of ``account`` finished in ``state`` (its handler ``crm`` dead or done)."""
    body = encode(delivery(message_id, status=6))
    event_id = (await store.ingest(incoming_from(body, T0, 0, account=account))).event_id
    [claimed] = await store.claim("w", 10, LEASE, now=NOW)
    run = HandlerRun(
        "crm", state, 3 if state == DEAD else 1, "crm: boom" if state == DEAD else None
    )
    await store.complete("w", [Completion(claimed.id, state, NOW, (run,), run.last_error)], now=NOW)
    return event_id


async def test_dead_letters_retried_per_account(store: Store) -> None:
    """dead_letter_ids and retry_dead_letters with an account see that account's only."""
    ours = await finished(store, 1, DEFAULT_ACCOUNT)
    theirs = await finished(store, 1, "brand-b")

    assert await store.operator.dead_letter_ids("brand-b") == [theirs]
    assert sorted(await store.operator.dead_letter_ids()) == sorted([ours, theirs])
    assert await store.maintenance.retry_dead_letters([ours, theirs], NOW, "brand-b") == [theirs]
    assert not await store.maintenance.retry_dead_letter(ours, NOW, "brand-b")
    assert await store.fetch("SELECT account, state FROM events ORDER BY id") == [
        (DEFAULT_ACCOUNT, DEAD),
        ("brand-b", "pending"),
    ]
    assert await store.fetch("SELECT state FROM handler_runs WHERE event_id = ?", (ours,)) == [
        (DEAD,)
    ]


async def test_replay_per_account(store: Store) -> None:
    """A replay limited to one account leaves the other's finished event finished."""
    ours = await finished(store, 2, DEFAULT_ACCOUNT, DONE)
    theirs = await finished(store, 2, "brand-b", DONE)

    assert await store.maintenance.replay([ours, theirs], NOW, DEFAULT_ACCOUNT) == [ours]
    assert await store.fetch("SELECT id, state FROM events ORDER BY id") == [
        (ours, "pending"),
        (theirs, DONE),
    ]
    assert await store.fetch("SELECT event_id FROM handler_runs") == [(theirs,)]


async def test_purge_per_account(store: Store) -> None:
    """A purge limited to one account counts and deletes that account's events only."""
    await finished(store, 3, DEFAULT_ACCOUNT, DONE)
    theirs = await finished(store, 3, "brand-b", DONE)
    cutoff = T0 + 1

    dry = await store.maintenance.purge(cutoff, dry_run=True, account="brand-b")
    assert dry["events"] == 1
    done = await store.maintenance.purge(cutoff, dry_run=False, account="brand-b")
    assert done["events"] == 1
    assert await store.fetch("SELECT account FROM events") == [(DEFAULT_ACCOUNT,)]
    assert await store.fetch("SELECT count(*) FROM handler_runs WHERE event_id = ?", (theirs,)) == [
        (0,)
    ]


async def test_figures_and_charts_per_account(store: Store) -> None:
    """by_account counts each account's events, pending events and dead letters; the
    hourly chart narrows to one account."""
    await finished(store, 4, "brand-b")
    await store.ingest(incoming_from(encode(delivery(5, status=4)), NOW, 0))
    await store.ingest(incoming_from(encode(delivery(6, status=4)), NOW, 0, account="brand-b"))

    figures = {f.account: f for f in await store.operator.by_account(NOW + 1)}
    assert set(figures) == {DEFAULT_ACCOUNT, "brand-b"}
    assert (figures["brand-b"].events_24h, figures["brand-b"].pending) == (2, 1)
    assert (figures["brand-b"].dead_letters, figures[DEFAULT_ACCOUNT].dead_letters) == (1, 0)
    assert figures[DEFAULT_ACCOUNT].pending == 1
    hours = await store.operator.webhooks_per_hour(T0 - 3600, "brand-b")
    assert sum(h.count for h in hours) == 2
    assert sum(h.count for h in await store.operator.webhooks_per_hour(T0 - 3600)) == 3
