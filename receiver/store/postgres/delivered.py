"""The fallback's "original delivered" on PostgreSQL: every DELIVERED of a loop iteration
in one statement.

The fallback handler runs `Resends.original_delivered` for every DELIVERED status,
although almost no message has a resend. One statement per event was one round trip
per event, and its answers, coming back one by one, spread the completions and the
next claim of the worker's batch over as many loop iterations. Here the calls of one
loop iteration (the handlers of one claimed batch) go in one ``UPDATE ... FROM
unnest(...)``, with the same rules as the shared statement in receiver/store/resends.py.
"""

from __future__ import annotations

from typing import Any

from ...mta.events import DEFAULT_ACCOUNT
from ...mta.statuses import DELIVERED, STATUS_NAMES
from ..connector import Connector
from ..records import RESEND_OUT, ResendState
from ..resends import DOUBLE_DELIVERY, Resends
from .gather import Gathered

_OUT = ", ".join(f"'{state}'" for state in sorted(RESEND_OUT))
_SCHEDULED, _CANCELLED = f"'{ResendState.SCHEDULED}'", f"'{ResendState.CANCELLED}'"

# Resends.original_delivered for many originals: a scheduled resend is cancelled (its
# reason: the original was delivered), one already out is marked a double delivery
# once, and a resend to another recipient of the same send is left alone. The input's
# columns are named apart from resends' own, so unqualified names are the table's.
ORIGINAL_DELIVERED = f"""
UPDATE resends SET
    state = CASE WHEN state = {_SCHEDULED} THEN {_CANCELLED} ELSE state END,
    reason = CASE WHEN state = {_SCHEDULED} THEN '{STATUS_NAMES[DELIVERED]}' ELSE reason END,
    double_delivery = CASE WHEN state IN ({_OUT}) THEN 1 ELSE double_delivery END,
    updated_at = d.delivered_at
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[])
    AS d(original, delivered_to, delivered_at, of_account)
WHERE original_message_id = d.original AND account = d.of_account
  AND (state = {_SCHEDULED} OR (state IN ({_OUT}) AND double_delivery = 0))
  AND (phone IS NULL OR d.delivered_to IS NULL OR phone = d.delivered_to)
RETURNING account, original_message_id, state
"""

Delivery = tuple[str, float, "str | None", str]
"""(original message id, time, recipient, account) of one `original_delivered` call."""


async def original_delivered(db: Connector, calls: list[Delivery]) -> list[str | None]:
    """Each call's outcome (``cancelled``, ``double_delivery`` or None), in order.

    One statement per round of distinct originals: a second DELIVERED of the same
    original in one batch (two recipients of one send) runs after the first, as it
    would alone.
    """
    outcomes: list[str | None] = [None] * len(calls)
    # (account, original) -> index in calls, per round: message ids repeat across accounts.
    rounds: list[dict[tuple[str, str], int]] = []
    for index, (original, _, _, account) in enumerate(calls):
        key = (account, original)
        free = next((r for r in rounds if key not in r), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[key] = index
    for round_ in rounds:
        chosen = [calls[index] for index in round_.values()]
        params: list[Any] = [
            [original for original, _, _, _ in chosen],
            [phone for _, _, phone, _ in chosen],
            [at for _, at, _, _ in chosen],
            [account for _, _, _, account in chosen],
        ]
        for account, original, state in await db.fetch_write(ORIGINAL_DELIVERED, params):
            outcome = ResendState.CANCELLED if state == ResendState.CANCELLED else DOUBLE_DELIVERY
            outcomes[round_[(account, original)]] = outcome
    return outcomes


class PostgresResends(Resends):
    """`Resends` whose `original_delivered` calls are gathered per loop iteration."""

    __slots__ = ("_delivered",)

    def __init__(self, db: Connector, delivered: Gathered[Delivery, str | None]) -> None:
        super().__init__(db)
        self._delivered = delivered

    async def original_delivered(
        self,
        original_message_id: str,
        now: float,
        phone: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> str | None:
        """As `Resends.original_delivered`, in one statement with the other calls of
        this loop iteration."""
        return await self._delivered.submit((original_message_id, now, phone, account))
