"""The send limit shared through PostgreSQL: two limiters stand for two replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from receiver.mta import Rate
from receiver.store.postgres import PostgresStore
from receiver.store.postgres.limiter import PostgresLimiter, account_key

from ..pg import fresh_database, opened_store

pytestmark = pytest.mark.postgres

RATE = Rate(3, 0.5)
MARGIN = 0.05


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    """A migrated PostgreSQL store on a fresh database."""
    async with fresh_database() as url, opened_store(url) as opened:
        assert isinstance(opened, PostgresStore)
        yield opened


def replicas(store: PostgresStore, account: str = "acct") -> list[PostgresLimiter]:
    return [PostgresLimiter(store, RATE, account, margin=MARGIN) for _ in range(2)]


async def test_two_replicas_share_one_window(store: PostgresStore) -> None:
    """Six sends through two replicas at 3 per 0.5 s: three pass at once, three wait a
    window, and no window ever holds more than three."""
    first, second = replicas(store)
    admitted: list[float] = []

    async def send(limiter: PostgresLimiter) -> float:
        waited = await limiter.acquire()
        admitted.append(time.monotonic())
        return waited

    waits = await asyncio.gather(*(send(lim) for lim in (first, second) * 3))

    assert sorted(w > 0 for w in waits) == [False] * 3 + [True] * 3
    admitted.sort()
    for i in range(3, 6):
        assert admitted[i] - admitted[i - 3] >= RATE.seconds, admitted


async def test_a_pause_in_one_replica_holds_the_other(store: PostgresStore) -> None:
    """MTA's 429 seen by one replica makes the other wait out Retry-After too."""
    first, second = replicas(store)
    first.pause(0.4)
    await asyncio.sleep(0.1)  # the pause is written by a background task

    started = time.monotonic()
    await second.acquire()
    assert time.monotonic() - started >= 0.25


async def test_accounts_do_not_share_a_window(store: PostgresStore) -> None:
    """Another API key is another account: its sends are not counted against ours."""
    ours = PostgresLimiter(store, RATE, account_key("key-1"), margin=MARGIN)
    theirs = PostgresLimiter(store, RATE, account_key("key-2"), margin=MARGIN)
    for _ in range(3):
        await ours.acquire()

    assert await theirs.acquire() == 0.0
    assert account_key("key-1") != account_key("key-2")
    assert "key-1" not in account_key("key-1")
