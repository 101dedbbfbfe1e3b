"""The PostgreSQL store's wake-up announcements: one NOTIFY at a time, the commits made
meanwhile folded into the next, a failure logged (the workers' poll finds the events)."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from receiver.store.postgres.listener import Announcer

from .test_store import eventually


class SlowNotify:
    """Counts the NOTIFYs; each waits for the test to release it."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self) -> None:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise ConnectionError("server closed the connection")


async def test_commits_during_an_announcement_are_announced_once_after_it() -> None:
    notify = SlowNotify()
    announce = Announcer(notify)
    announce()
    await notify.started.wait()
    for _ in range(5):  # five commits while the first NOTIFY is under way
        announce()
    assert notify.calls == 1
    notify.release.set()
    await announce.close()
    assert notify.calls == 2  # the five, folded into one, after the first


async def test_a_commit_after_the_last_announcement_gets_its_own() -> None:
    notify = SlowNotify()
    notify.release.set()
    announce = Announcer(notify, spacing=0.0)
    announce()
    await eventually(lambda: notify.calls == 1)
    announce()
    await announce.close()
    assert notify.calls == 2


async def test_a_failed_announcement_is_logged_and_the_next_still_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notify = SlowNotify(fail=True)
    notify.release.set()
    announce = Announcer(notify, spacing=0.0)
    with caplog.at_level(logging.WARNING, logger="receiver.store"):
        announce()
        await eventually(lambda: "could not wake" in caplog.text)
        announce()
        await announce.close()
    assert notify.calls == 2
    assert "could not wake the other workers (ConnectionError" in caplog.text


async def test_announcements_under_load_are_spaced() -> None:
    """Commits arriving without pause are announced at most once per ``spacing``."""
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def notify() -> None:
        sent.append(loop.time())

    announce = Announcer(notify, spacing=0.05)
    deadline = loop.time() + 0.3
    while loop.time() < deadline:
        announce()
        await asyncio.sleep(0.001)
    await announce.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert 2 <= len(sent) <= 0.3 / 0.05 + 2  # a loaded machine may send fewer, not more
    assert min(gaps) >= 0.05 - 0.002  # the loop's clock granularity


async def test_nothing_is_announced_once_closed() -> None:
    """At shutdown the pool closes after the announcer: a batch finishing meanwhile
    announces nothing (the other workers' poll finds it) instead of failing on a closed
    store."""
    notify = SlowNotify()
    notify.release.set()
    announce = Announcer(notify)
    await announce.close()
    announce()
    await announce.close()
    assert notify.calls == 0
