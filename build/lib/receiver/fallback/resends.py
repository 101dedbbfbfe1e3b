"""The resend outbox, opt-outs and our own sends: SQL over the `Store` port.

Every state change is one conditional statement (``UPDATE ... WHERE state = ...``), so
two workers, or a handler and the outbox, can never both win the same transition.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..mta.phones import e164, opt_out_keys
from ..store import Store, sql

SCHEDULED = "scheduled"
SENDING = "sending"
RECONCILING = "reconciling"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
REJECTED = "rejected"
UNKNOWN = "unknown"
CANCELLED = "cancelled"
SKIPPED = "skipped"
# After these, the resend may have reached the person.
OUT = (SENDING, RECONCILING, SENT, DELIVERED, FAILED, UNKNOWN)

TAG = "fallbackOf"  # tag naming the original messageId on every resend

_COLUMNS = (
    "original_message_id, state, reason, phone, text, tags, original_external_id,"
    " external_id, request_id, failure_status, failed_at, due_at, attempts, sent_at,"
    " resend_message_id, mta_request_id, double_delivery, updated_at"
)


@dataclass(frozen=True, slots=True)
class Resend:
    """One original message's resend and where it stands."""

    original_message_id: str
    state: str
    reason: str | None
    phone: str | None
    text: str | None
    tags: dict[str, str]
    original_external_id: str | None
    external_id: str
    request_id: str
    failure_status: int | None
    failed_at: float
    due_at: float
    attempts: int
    sent_at: float | None
    resend_message_id: str | None
    mta_request_id: str | None
    double_delivery: bool
    updated_at: float

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Resend:
        values = list(row)
        values[5] = json.loads(values[5]) if values[5] else {}
        values[16] = bool(values[16])
        return cls(*values)


def resend_external_id(original_message_id: str, original_external_id: str | None) -> str:
    """The resend's externalId: derived from the original's, unique per original."""
    base = original_external_id or "mta"
    return f"{base}.sms-fallback.{original_message_id}"


def phone_key(number: str) -> str:
    """The opt-out key of a number: E.164 (``+15551234567``), an e-mail address (an Apple
    ID) lowercased. MTA spells numbers national or E.164 (docs/mta.md); events reach
    handlers already in E.164, so the default country here only serves a bare national
    number (an operator's filter, say)."""
    return e164(number)


class Resends:
    """Typed access to the fallback tables of a `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        state: str = SCHEDULED,
        reason: str | None = None,
    ) -> bool:
        """Claim the one resend of an original; False when it was claimed before."""
        changed = await self.store.execute(
            "INSERT INTO resends (original_message_id, state, reason, phone, tags,"
            " original_external_id, external_id, request_id, failure_status, failed_at,"
            " due_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (original_message_id) DO NOTHING",
            (
                original_message_id,
                state,
                reason,
                phone,
                json.dumps(tags),
                original_external_id,
                resend_external_id(original_message_id, original_external_id),
                uuid.uuid4().hex,
                failure_status,
                failed_at,
                due_at,
                now,
            ),
        )
        return changed > 0

    async def get(self, original_message_id: str) -> Resend | None:
        """The resend of one original, if any."""
        rows = await self.store.fetch(
            f"SELECT {_COLUMNS} FROM resends WHERE original_message_id = ?",
            (original_message_id,),
        )
        return Resend.from_row(rows[0]) if rows else None

    async def in_state(self, state: str, limit: int = 100) -> list[Resend]:
        """Resends in one state, oldest failure first (operator listings)."""
        rows = await self.store.fetch(
            f"SELECT {_COLUMNS} FROM resends WHERE state = ? ORDER BY failed_at LIMIT ?",
            (state, limit),
        )
        return [Resend.from_row(row) for row in rows]

    async def find_by_resend(
        self, external_id: str | None, message_id: str | None
    ) -> Resend | None:
        """The resend a webhook is about, by its externalId or its new messageId."""
        if external_id is None and message_id is None:
            return None
        rows = await self.store.fetch(
            f"SELECT {_COLUMNS} FROM resends WHERE external_id = ? OR resend_message_id = ?",
            (external_id, message_id),
        )
        return Resend.from_row(rows[0]) if rows else None

    async def transition(
        self,
        original_message_id: str,
        to: str,
        *,
        from_: tuple[str, ...],
        now: float,
        **fields: Any,
    ) -> bool:
        """Move a resend to ``to`` only from one of ``from_``; set ``fields`` too."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        marks = sql.marks(from_)
        changed = await self.store.execute(
            f"UPDATE resends SET state = ?, updated_at = ?{', ' + sets if sets else ''}"
            f" WHERE original_message_id = ? AND state IN ({marks})",
            (to, now, *fields.values(), original_message_id, *from_),
        )
        return changed > 0

    async def original_delivered(self, original_message_id: str, now: float) -> str | None:
        """The original was delivered: cancel its scheduled resend, or, when the resend
        already went out, record a double delivery. One statement (this runs for every
        DELIVERED webhook); returns ``cancelled``, ``double_delivery`` or None."""
        out = sql.marks(OUT)
        rows = await self.store.fetch_write(
            "UPDATE resends SET"
            " state = CASE WHEN state = ? THEN ? ELSE state END,"
            " reason = CASE WHEN state = ? THEN 'delivered' ELSE reason END,"
            f" double_delivery = CASE WHEN state IN ({out}) THEN 1 ELSE double_delivery END,"
            " updated_at = ?"
            f" WHERE original_message_id = ? AND (state = ? OR (state IN ({out})"
            " AND double_delivery = 0)) RETURNING state",
            (SCHEDULED, CANCELLED, SCHEDULED, *OUT, now, original_message_id, SCHEDULED, *OUT),
        )
        if not rows:
            return None
        return CANCELLED if rows[0][0] == CANCELLED else "double_delivery"

    async def claim_due(self, owner: str, now: float, lease: float, limit: int) -> list[Resend]:
        """Lease due resends: scheduled ones, reconciling ones past their window, and
        ``sending`` ones whose worker died mid-call (their outcome is unknown).

        The lease condition is repeated outside the subquery: on PostgreSQL, an UPDATE
        that waited for another claim's row lock re-checks only its own WHERE against
        the row that claim committed, so without it both claims would win the row.
        """
        due = (
            "state IN ('scheduled', 'sending', 'reconciling') AND due_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?)"
        )
        rows = await self.store.fetch_write(
            "UPDATE resends SET lease_owner = ?, lease_until = ? WHERE original_message_id IN ("
            f" SELECT original_message_id FROM resends WHERE {due} ORDER BY due_at LIMIT ?)"
            f" AND {due} RETURNING {_COLUMNS}",
            (owner, now + lease, now, now, limit, now, now),
        )
        return sorted((Resend.from_row(r) for r in rows), key=lambda r: r.due_at)

    async def release(self, original_message_id: str, owner: str) -> None:
        """Drop ``owner``'s lease on one resend (a lease another owner took stays)."""
        await self.store.execute(
            "UPDATE resends SET lease_owner = NULL, lease_until = NULL"
            " WHERE original_message_id = ? AND lease_owner = ?",
            (original_message_id, owner),
        )

    async def renew(self, owner: str, until: float, original_message_ids: list[str]) -> None:
        """Extend ``owner``'s leases on resends it is working on (a send waiting out a
        Retry-After may take longer than one lease)."""
        if original_message_ids:
            ids = sql.marks(original_message_ids)
            await self.store.execute(
                "UPDATE resends SET lease_until = ?"
                f" WHERE lease_owner = ? AND original_message_id IN ({ids})",
                (until, owner, *original_message_ids),
            )

    async def opt_out(self, phone: str, source: str, now: float) -> None:
        """Remember that a number opted out."""
        await self.store.execute(
            "INSERT INTO opt_outs (phone, source, at) VALUES (?, ?, ?)"
            # A status 11 is MTA's record: a later STOP reply must not turn it into one
            # that a START could lift.
            " ON CONFLICT (phone) DO UPDATE SET source = CASE WHEN opt_outs.source ="
            " 'status_11' THEN opt_outs.source ELSE excluded.source END, at = excluded.at",
            (phone_key(phone), source, now),
        )

    async def opt_in(self, phone: str) -> bool:
        """Lift a STOP reply's opt-out (an SMS START/UNSTOP reply); a status 11 opt-out is
        MTA's record and stays. Whether one was lifted."""
        rows = await self.store.fetch_write(
            "DELETE FROM opt_outs WHERE phone IN (?, ?) AND source = 'stop_reply' RETURNING phone",
            opt_out_keys(phone),
        )
        return bool(rows)

    async def never_resend_status(self, message_id: str) -> int | None:
        """An invalid-number or landline status (10, 12) the message got, if any: its
        state keeps its first failure, so a later 10 or 12 shows only among its events."""
        rows = await self.store.fetch(
            "SELECT status FROM events WHERE message_id = ? AND status IN (10, 12) LIMIT 1",
            (message_id,),
        )
        return int(rows[0][0]) if rows else None

    async def opted_out(self, phone: str) -> bool:
        """Whether a number opted out."""
        rows = await self.store.fetch(
            "SELECT 1 FROM opt_outs WHERE phone IN (?, ?)", opt_out_keys(phone)
        )
        return bool(rows)

    async def record_sent(
        self,
        *,
        message_id: str,
        external_id: str | None,
        phone: str,
        text: str,
        sender_name: str | None,
        tags: dict[str, str],
        now: float,
    ) -> None:
        """Keep the text and route of a message sent through our own send path."""
        await self.store.execute(
            "INSERT INTO sent_messages (message_id, external_id, phone, text, sender_name,"
            " tags, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (message_id, external_id, phone, text, sender_name, json.dumps(tags), now),
        )

    async def sent_message(self, message_id: str) -> tuple[str, str | None] | None:
        """(text, senderName) of a message from our own send path."""
        rows = await self.store.fetch(
            "SELECT text, sender_name FROM sent_messages WHERE message_id = ?", (message_id,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def send_event_body(self, message_id: str) -> bytes | None:
        """The raw ``message-send`` webhook of a message, if it arrived."""
        rows = await self.store.fetch(
            "SELECT body FROM events WHERE dedup_key = ?", (f"ms:{message_id}",)
        )
        return bytes(rows[0][0]) if rows else None
