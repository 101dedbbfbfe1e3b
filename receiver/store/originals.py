"""What the store knows of an original message beyond its state: the statuses among its
events (per recipient too), and, for our own sends, its text and route."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..mta.events import DEFAULT_ACCOUNT, account_key, message_send_key
from ..mta.statuses import DELIVERED
from . import sql
from .connector import Connector, named


class Originals:
    """Reads about original messages (the base of `resends.Resends`)."""

    __slots__ = ("_db",)

    def __init__(self, db: Connector) -> None:
        self._db = db

    async def status_among(
        self, message_id: str, statuses: Iterable[int], account: str = DEFAULT_ACCOUNT
    ) -> int | None:
        """One of ``statuses`` that any event of the message carried, if any: a message's
        state keeps its first failure, so a later status shows only among its events."""
        wanted = sorted(int(status) for status in statuses)
        rows = await self._db.fetch(
            "SELECT status FROM events WHERE message_id = ? AND account = ?"
            f" AND status IN ({sql.marks(wanted)}) LIMIT 1",
            (message_id, account, *wanted),
        )
        return int(rows[0][0]) if rows else None

    async def delivered_to(
        self, message_id: str, phone: str | None, account: str = DEFAULT_ACCOUNT
    ) -> bool:
        """Whether a DELIVERED of the message reached ``phone`` (or a recipient we do not
        know, or anyone when ``phone`` is None): one send has one messageId for all its
        recipients, and the message's state does not say which of them it was."""
        rows = await self._db.fetch(
            "SELECT 1 FROM events WHERE message_id = ? AND account = ? AND status = ?"
            " AND (phone IS NULL OR CAST(? AS TEXT) IS NULL OR phone = ?) LIMIT 1",
            (message_id, account, int(DELIVERED), phone, phone),
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
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """Keep the text and route of a message sent through our own send path."""
        await self._db.execute(
            "INSERT INTO sent_messages (account, message_id, external_id, phone, text,"
            " sender_name, tags, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (account, message_id) DO NOTHING",
            (account, message_id, external_id, phone, text, sender_name, json.dumps(tags), now),
        )

    async def sent_message(
        self, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> tuple[str, str | None] | None:
        """(text, senderName) of a message from our own send path."""
        rows = await self._db.fetch(
            "SELECT text, sender_name FROM sent_messages WHERE account = ? AND message_id = ?",
            (account, message_id),
        )
        if not rows:
            return None
        row = named(("text", "sender_name"), rows[0])
        return row["text"], row["sender_name"]

    async def send_event_body(
        self, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> bytes | None:
        """The raw ``message-send`` webhook of a message, if it arrived."""
        rows = await self._db.fetch(
            "SELECT body FROM events WHERE dedup_key = ?",
            (account_key(account, message_send_key(message_id)),),
        )
        return bytes(rows[0][0]) if rows else None
