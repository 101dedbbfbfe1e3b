"""SQL shared by the store adapters, written once with ``?`` placeholders.

SQLite takes it as is; the PostgreSQL adapter rewrites ``?`` to ``$n``. Where the dialects
differ the adapter keeps its own constant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from typing import TypeVar

T = TypeVar("T")
IN_LIST_MAX = 500
"""Values of one ``IN (...)`` list at most (see `chunked`)."""


def marks(values: Sized) -> str:
    """``?, ?, ?``: one placeholder per value, for an ``IN (...)`` list."""
    return ", ".join("?" * len(values))


def chunked(values: Sequence[T], size: int = IN_LIST_MAX) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``: bounded ``IN`` lists."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


EVENT_COLUMNS = (
    "dedup_key, type, name, message_id, status, external_id, phone, received_at,"
    " secret_index, body, state, run_after, last_error, account"
)
_EVENT_ROW = f"({marks(EVENT_COLUMNS.split(','))})"


def insert_events(rows: int) -> str:
    """Insert ``rows`` events at once; a repeated dedup_key counts a duplicate instead.

    RETURNING gives one row per input row, new or duplicate (``duplicates > 0``).
    """
    return (
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {', '.join([_EVENT_ROW] * rows)}"
        " ON CONFLICT (dedup_key) DO UPDATE SET duplicates = events.duplicates + 1"
        " RETURNING dedup_key, id, duplicates"
    )


INSERT_MESSAGES = """
INSERT INTO messages (message_id, status, status_rank, status_at, first_seen, phone,
                      external_id, sender_name, account)
"""

# Forward-only: a status replaces the current one only when it ranks higher
# (receiver/mta/statuses.py); identity fields fill in where they were unknown. Both dialects
# end their message upserts with this.
MESSAGE_FORWARD_ONLY = """
ON CONFLICT (account, message_id) DO UPDATE SET
    status = CASE WHEN excluded.status_rank > messages.status_rank
                  THEN excluded.status ELSE messages.status END,
    status_at = CASE WHEN excluded.status_rank > messages.status_rank
                     THEN excluded.status_at ELSE messages.status_at END,
    status_rank = CASE WHEN excluded.status_rank > messages.status_rank
                       THEN excluded.status_rank ELSE messages.status_rank END,
    phone = COALESCE(messages.phone, excluded.phone),
    external_id = COALESCE(messages.external_id, excluded.external_id),
    sender_name = COALESCE(messages.sender_name, excluded.sender_name)
"""


def upsert_messages(rows: int) -> str:
    """Insert or move forward ``rows`` messages in one statement.

    SQLite applies the rows in order, so a message id repeated in one batch folds in as
    if the rows came one by one (PostgreSQL would refuse it; its adapter has its own).
    """
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return f"{INSERT_MESSAGES}VALUES {values}{MESSAGE_FORWARD_ONLY}"


# Receipt order per message: an event is claimable only when no earlier event of the
# same message (of the same account: message ids are per account) is still pending
# (NULL message ids never block each other). The slots are PostgreSQL's (pg_sql.LEASE):
# a planner fence in the probe and row locks; SQLite leaves them empty.
CLAIMABLE = """
SELECT e.id FROM events e
WHERE e.state = 'pending' AND e.run_after <= ?
  AND (e.lease_until IS NULL OR e.lease_until < ?)
  AND NOT EXISTS (
      SELECT 1 FROM events p
      WHERE p.state = 'pending' AND p.message_id = e.message_id AND p.id < e.id
        AND p.account = e.account{fence})
ORDER BY e.id
LIMIT ?{lock}
"""

LEASE = """
UPDATE events SET lease_owner = ?, lease_until = ?
WHERE id IN ({claimable})
RETURNING id, type, name, message_id, received_at, body, attempts, account
"""

SELECT_RUNS = "SELECT event_id, handler, state, attempts, last_error FROM handler_runs"

UPSERT_RUN = """
INSERT INTO handler_runs (event_id, handler, state, attempts, last_error, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id, handler) DO UPDATE SET
    state = excluded.state, attempts = excluded.attempts,
    last_error = excluded.last_error, updated_at = excluded.updated_at
"""

FINISH_EVENT = """
UPDATE events SET state = ?, run_after = ?, last_error = ?, attempts = attempts + 1,
                  lease_owner = NULL, lease_until = NULL, finished_at = ?
WHERE id = ? AND lease_owner = ?
"""


RENEW = "UPDATE events SET lease_until = ? WHERE lease_owner = ? AND state = 'pending'"
"""Followed by ``AND id IN (...)``: the leases of the events listed."""

RELEASE = """
UPDATE events SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = ? AND state = 'pending'
"""

SELECT_MESSAGE = """
SELECT message_id, status, status_at, first_seen, phone, external_id, sender_name
FROM messages WHERE account = ? AND message_id = ?
"""

# Lease recovery: the leases of owners whose heartbeat row is older than a bound go back
# to the pool. An owner without a heartbeat row (a CLI replay) keeps its leases until
# they expire, and the asking owner never recovers its own.
RECOVER = """
UPDATE events SET lease_owner = NULL, lease_until = NULL
WHERE state = 'pending' AND lease_owner IS NOT NULL AND lease_owner <> ?
  AND lease_owner IN (SELECT owner FROM heartbeats WHERE at < ?)
"""

HEARTBEAT = """
INSERT INTO heartbeats (owner, at) VALUES (?, ?)
ON CONFLICT (owner) DO UPDATE SET at = excluded.at
"""
