"""PostgreSQL's per-iteration gathering (completions, deliveries): the calls of one loop
iteration run together, a later iteration's in the next run, and a failed run fails
every call of it."""

from __future__ import annotations

import asyncio

import pytest

from receiver.store.postgres.gather import Gathered


async def test_calls_of_one_loop_iteration_run_together() -> None:
    """Three calls made together are one run, each answered its own result; a call made
    after them is a run of its own."""
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        return [item * 10 for item in items]

    gathered: Gathered[int, int] = Gathered(run)
    assert await asyncio.gather(*(gathered.submit(n) for n in (1, 2, 3))) == [10, 20, 30]
    assert await gathered.submit(4) == 40
    assert runs == [[1, 2, 3], [4]]


async def test_a_failed_run_fails_every_call_of_it() -> None:
    """Nothing of a failed run committed: every call of it sees the error."""

    async def run(items: list[int]) -> list[int]:
        raise RuntimeError("connection lost")

    gathered: Gathered[int, int] = Gathered(run)
    outcomes = await asyncio.gather(gathered.submit(1), gathered.submit(2), return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["connection lost"] * 2
    with pytest.raises(RuntimeError):
        await gathered.submit(3)
