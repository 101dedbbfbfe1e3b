"""The fallback's rules are written once: one never-resend set, one transition table."""

from __future__ import annotations

from pathlib import Path

import pytest
from receiver_handlers import fallback as builtin

from receiver import Secret, settings
from receiver.fallback import content, policy
from receiver.fallback.policy import MOVES, Move, move
from receiver.mta import Rate, statuses
from receiver.store import ResendState, Store

from ..conftest import make_settings, schedule_resend

S = ResendState


def test_never_resend_is_one_set_of_enum_members() -> None:
    """Settings, the built-in handler and the outbox's late check all use the one
    ``statuses.NEVER_RESEND``: invalid number, stopped number, landline."""
    assert {10, 11, 12} == statuses.NEVER_RESEND
    assert all(isinstance(code, statuses.DeliveryStatus) for code in statuses.NEVER_RESEND)
    assert settings.NEVER_RESEND is statuses.NEVER_RESEND
    assert builtin.NEVER_RESEND is statuses.NEVER_RESEND
    assert statuses.NEVER_RESEND - {statuses.STOPPED_NUMBER} == content.LATE_NEVER_RESEND
    assert not hasattr(statuses, "TERMINAL")


def test_every_resend_state_is_reached_only_through_the_table() -> None:
    """Every resend state is some move's target, and moves that must not start from an
    in-flight send (a handler's, an operator's) do not."""
    targets = {rule.to for rule in MOVES.values()}
    assert targets == set(ResendState)
    assert policy.entered_from(S.UNKNOWN) == {S.RECONCILING}
    assert policy.entered_from(S.SENDING) == {S.SCHEDULED}
    # A handler never holds the outbox's lease: nothing it does starts from SENDING.
    for step in (Move.NEVER_RESEND, Move.ARRIVED, Move.RESEND_FAILED):
        assert S.SENDING not in MOVES[step].sources


@pytest.mark.parametrize(
    ("start", "step", "moved", "end"),
    [
        (S.UNKNOWN, Move.OPERATOR_RESEND, True, S.SCHEDULED),
        # An operator's resend of a row in flight would send it twice.
        (S.SENDING, Move.OPERATOR_RESEND, False, S.SENDING),
        (S.SCHEDULED, Move.OPERATOR_DROP, False, S.SCHEDULED),
        (S.SENDING, Move.NEVER_RESEND, False, S.SENDING),
        (S.SCHEDULED, Move.NEVER_RESEND, True, S.SKIPPED),
        (S.UNKNOWN, Move.LEARN_ID, True, S.SENT),
        (S.SENT, Move.ARRIVED, True, S.DELIVERED),
        (S.SCHEDULED, Move.ARRIVED, False, S.SCHEDULED),
    ],
)
async def test_a_move_applies_only_from_its_sources(
    store: Store, start: ResendState, step: Move, moved: bool, end: ResendState
) -> None:
    """`policy.move` runs the table's row as one conditional statement on both backends."""
    await schedule_resend(store, "42", state=start)
    assert await move(store.resends, "42", step, now=1.0) is moved
    resend = await store.resends.get("42")
    assert resend is not None
    assert resend.state == end


async def test_the_store_hands_out_the_send_limiter_and_services_use_it(
    store: Store, tmp_path: Path
) -> None:
    """PostgreSQL hands out its shared limiter for the account (keyed by a hash of the API
    key), SQLite none, so `services.send_limiter` keeps one in memory: no caller asks
    which backend it has."""
    from receiver import services
    from receiver.mta import SlidingWindowLimiter
    from receiver.store.postgres.limiter import PostgresLimiter, account_key

    shared = store.send_limiter(Rate(25, 15.0), "key-1")
    settings = make_settings(tmp_path, mta_api_key=Secret("key-1"))
    chosen = services.send_limiter(settings, store, settings.account("default"))
    if store.describe() == "postgres":
        assert isinstance(shared, PostgresLimiter)
        assert shared.account == account_key("key-1")
        assert isinstance(chosen, PostgresLimiter)
    else:
        assert shared is None
        assert isinstance(chosen, SlidingWindowLimiter)
