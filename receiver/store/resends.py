"""The resend outbox, opt-outs and our own sends: the fallback feature's tables.

Every state change is one conditional statement (``UPDATE ... WHERE state IN ...``), so
two workers, or a handler and the outbox, can never both win the same transition. Which
transitions exist is the fallback's rule (receiver/fallback/policy.py); this module only
runs them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from typing import Any

from ..mta.events import DEFAULT_ACCOUNT
from ..mta.phones import e164, opt_out_keys
from ..mta.statuses import DELIVERED, STATUS_NAMES
from . import sql
from .originals import Originals
from .records import RESEND_ACTIVE, RESEND_COLUMNS, RESEND_OUT, Resend, ResendState

_SELECT = ", ".join(RESEND_COLUMNS)

# Opt-out sources: a STOP reply (START lifts it) and MTA's status 11 (nothing lifts it).
STOP_REPLY = "stop_reply"
STATUS_11 = "status_11"
DOUBLE_DELIVERY = "double_delivery"

# Literals, not parameters: only then can the planners use the partial index resends_due
# (migrations/*/0002_fallback.sql), whose predicate lists these states in this order.
_DUE_ORDER = (ResendState.SCHEDULED, ResendState.SENDING, ResendState.RECONCILING)
assert frozenset(_DUE_ORDER) == RESEND_ACTIVE
_DUE_STATES = ", ".join(f"'{state}'" for state in _DUE_ORDER)


def resend_external_id(
    original_message_id: str, original_external_id: str | None, account: str = DEFAULT_ACCOUNT
) -> str:
    """The resend's externalId: derived from the original's, unique per original (two
    accounts may share a message id, so another account's name is in it too)."""
    base = original_external_id or "mta"
    original = (
        original_message_id if account == DEFAULT_ACCOUNT else f"{account}.{original_message_id}"
    )
    return f"{base}.sms-fallback.{original}"


class Resends(Originals):
    """Typed access to the fallback tables: resends, opt-outs, and (`Originals`) what we
    know of the original messages."""

    __slots__ = ()

    async def schedule(
        self,
        *,
        original_message_id: str,
        phone: str | None,
        tags: dict[str, str],
        original_external_id: str | None,
        failure_status: int | None,
        failed_at: float,
        due_at: float,
        now: float,
        state: ResendState = ResendState.SCHEDULED,
        reason: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> bool:
        """Claim the one resend of an original of ``account``; False when it was claimed
        before."""
        changed = await self._db.execute(
            "INSERT INTO resends (account, original_message_id, state, reason, phone, tags,"
            " original_external_id, external_id, request_id, failure_status, failed_at,"
            " due_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (account, original_message_id) DO NOTHING",
            (
                account,
                original_message_id,
                str(state),
                reason,
                phone,
                json.dumps(tags),
                original_external_id,
                resend_external_id(original_message_id, original_external_id, account),
                uuid.uuid4().hex,
                failure_status,
                failed_at,
                due_at,
                now,
            ),
        )
        return changed > 0

    async def get(self, original_message_id: str, account: str = DEFAULT_ACCOUNT) -> Resend | None:
        """The resend of one original of ``account``, if any."""
        rows = await self._db.fetch(
            f"SELECT {_SELECT} FROM resends WHERE account = ? AND original_message_id = ?",
            (account, original_message_id),
        )
        return Resend.from_row(rows[0]) if rows else None

    async def in_state(self, state: ResendState, limit: int = 100) -> list[Resend]:
        """Resends in one state, oldest failure first (operator listings)."""
        rows = await self._db.fetch(
            f"SELECT {_SELECT} FROM resends WHERE state = ? ORDER BY failed_at LIMIT ?",
            (str(state), limit),
        )
        return [Resend.from_row(row) for row in rows]

    async def find_by_resend(
        self, external_id: str | None, message_id: str | None, account: str = DEFAULT_ACCOUNT
    ) -> Resend | None:
        """The resend a webhook of ``account`` is about, by its externalId or its new
        messageId."""
        if external_id is None and message_id is None:
            return None
        rows = await self._db.fetch(
            f"SELECT {_SELECT} FROM resends"
            " WHERE account = ? AND (external_id = ? OR resend_message_id = ?)",
            (account, external_id, message_id),
        )
        return Resend.from_row(rows[0]) if rows else None

    async def transition(
        self,
        original_message_id: str,
        to: ResendState,
        *,
        from_: Collection[ResendState],
        now: float,
        account: str = DEFAULT_ACCOUNT,
        **fields: Any,
    ) -> bool:
        """Move a resend to ``to`` only from one of ``from_`` (receiver/fallback/policy.py
        says which); set ``fields`` too. Whether it moved."""
        sets = "".join(f", {name} = ?" for name in fields)
        sources = sorted(from_)
        changed = await self._db.execute(
            f"UPDATE resends SET state = ?, updated_at = ?{sets} WHERE account = ?"
            f" AND original_message_id = ? AND state IN ({sql.marks(sources)})",
            (str(to), now, *fields.values(), account, original_message_id, *sources),
        )
        return changed > 0

    async def original_delivered(
        self,
        original_message_id: str,
        now: float,
        phone: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> str | None:
        """The original was delivered (to ``phone``, when known): cancel its scheduled
        resend, or, when the resend already went out, record a double delivery; a resend
        to another recipient of the same send is left alone. One statement (this runs for
        every DELIVERED webhook); returns ``cancelled``, ``double_delivery`` or None."""
        out = sorted(RESEND_OUT)
        marks = sql.marks(out)
        scheduled, cancelled = ResendState.SCHEDULED.value, ResendState.CANCELLED.value
        rows = await self._db.fetch_write(
            "UPDATE resends SET"
            " state = CASE WHEN state = ? THEN ? ELSE state END,"
            " reason = CASE WHEN state = ? THEN ? ELSE reason END,"
            f" double_delivery = CASE WHEN state IN ({marks}) THEN 1 ELSE double_delivery END,"
            " updated_at = ?"
            f" WHERE account = ? AND original_message_id = ? AND (state = ? OR (state IN ({marks})"
            " AND double_delivery = 0)) AND (phone IS NULL OR CAST(? AS TEXT) IS NULL OR phone = ?)"
            " RETURNING state",
            (
                scheduled,
                cancelled,
                scheduled,
                STATUS_NAMES[DELIVERED],  # the reason: the original was delivered
                *out,
                now,
                account,
                original_message_id,
                scheduled,
                *out,
                phone,
                phone,
            ),
        )
        if not rows:
            return None
        return ResendState.CANCELLED if rows[0][0] == cancelled else DOUBLE_DELIVERY

    async def claim_due(self, owner: str, now: float, lease: float, limit: int) -> list[Resend]:
        """Lease due resends: scheduled ones, reconciling ones past their window, and
        ``sending`` ones whose worker died mid-call (their outcome is unknown).

        The lease condition is repeated outside the subquery: on PostgreSQL, an UPDATE
        that waited for another claim's row lock re-checks only its own WHERE against
        the row that claim committed, so without it both claims would win the row.
        """
        due = (
            f"state IN ({_DUE_STATES}) AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
        )
        rows = await self._db.fetch_write(
            "UPDATE resends SET lease_owner = ?, lease_until = ?"
            " WHERE (account, original_message_id) IN (SELECT account, original_message_id"
            f" FROM resends WHERE {due} ORDER BY due_at LIMIT ?)"
            f" AND {due} RETURNING {_SELECT}",
            (owner, now + lease, now, now, limit, now, now),
        )
        return sorted((Resend.from_row(r) for r in rows), key=lambda r: r.due_at)

    async def release(
        self, original_message_id: str, owner: str, account: str = DEFAULT_ACCOUNT
    ) -> None:
        """Drop ``owner``'s lease on one resend (a lease another owner took stays)."""
        await self._db.execute(
            "UPDATE resends SET lease_owner = NULL, lease_until = NULL"
            " WHERE account = ? AND original_message_id = ? AND lease_owner = ?",
            (account, original_message_id, owner),
        )

    async def renew(self, owner: str, until: float, originals: Collection[tuple[str, str]]) -> None:
        """Extend ``owner``'s leases on resends it is working on, given as (account,
        original message id) pairs (a send waiting out a Retry-After may take longer than
        one lease)."""
        ids = sorted({message_id for _, message_id in originals})
        if ids:
            # By id and owner: another account's row with the same id is renewed only
            # when ``owner`` holds it too, which it then works on as well.
            await self._db.execute(
                "UPDATE resends SET lease_until = ?"
                f" WHERE lease_owner = ? AND original_message_id IN ({sql.marks(ids)})",
                (until, owner, *ids),
            )

    async def opt_out(
        self, phone: str, source: str, now: float, account: str = DEFAULT_ACCOUNT
    ) -> None:
        """Remember that a number opted out of ``account`` (``source``: `STOP_REPLY` or
        `STATUS_11`)."""
        await self._db.execute(
            "INSERT INTO opt_outs (account, phone, source, at) VALUES (?, ?, ?, ?)"
            # A status 11 is MTA's record: a later STOP reply must not turn it into one
            # that a START could lift.
            " ON CONFLICT (account, phone) DO UPDATE SET source = CASE WHEN opt_outs.source ="
            " ? THEN opt_outs.source ELSE excluded.source END,"
            # The latest STOP counts: a START must be newer than it to lift it.
            " at = CASE WHEN excluded.at > opt_outs.at THEN excluded.at ELSE opt_outs.at END",
            (account, e164(phone), source, now, STATUS_11),
        )

    async def opt_in(self, phone: str, at: float, account: str = DEFAULT_ACCOUNT) -> bool:
        """Lift a STOP reply's opt-out (an SMS START/UNSTOP reply sent at ``at``) when the
        STOP came before it: a START handled late (a retry, a backlog) never undoes a newer
        STOP. A status 11 opt-out is MTA's record and stays. Whether one was lifted."""
        rows = await self._db.fetch_write(
            "DELETE FROM opt_outs WHERE account = ? AND phone IN (?, ?) AND source = ?"
            " AND at <= ? RETURNING phone",
            (account, *opt_out_keys(phone), STOP_REPLY, at),
        )
        return bool(rows)

    async def opted_out(self, phone: str, account: str | None = DEFAULT_ACCOUNT) -> bool:
        """Whether a number opted out of ``account`` (None: of any account, for
        RECEIVER_OPT_OUT_SCOPE=global)."""
        if account is None:
            rows = await self._db.fetch(
                "SELECT 1 FROM opt_outs WHERE phone IN (?, ?) LIMIT 1", opt_out_keys(phone)
            )
        else:
            rows = await self._db.fetch(
                "SELECT 1 FROM opt_outs WHERE account = ? AND phone IN (?, ?)",
                (account, *opt_out_keys(phone)),
            )
        return bool(rows)
