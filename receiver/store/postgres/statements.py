"""PostgreSQL's side of the SQL: ``?`` rewritten to ``$n``, the few statements where the
dialects differ, and the driver's errors translated at the boundary.

Everything else is the shared text of `receiver.store.sql` (and the ``?`` queries of
the repositories in `receiver.store`), rewritten once per distinct query and cached.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from ...errors import StoreError, StoreUnavailable
from .. import sql

_MARK = re.compile(r"\?")


@functools.lru_cache(maxsize=1024)
def numbered(query: str) -> str:
    """``?`` placeholders to asyncpg's ``$1, $2, ...``; string literals are left alone."""
    counter = itertools.count(1)
    parts = query.split("'")
    # Even parts lie outside '...' literals ('' inside a literal splits into an empty
    # even part, which holds no mark).
    for i in range(0, len(parts), 2):
        parts[i] = _MARK.sub(lambda _: f"${next(counter)}", parts[i])
    return "'".join(parts)


def rowcount(status: str) -> int:
    """Rows a command changed, from asyncpg's status tag (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


WAKE_CHANNEL = "mta_receiver_events"
"""The NOTIFY channel of committed events (receiver/store/postgres/listener.py)."""
# Wakes the workers of every process (listener.py: `Announcer`). A notifying transaction
# holds the notification queue's lock until its commit is flushed; a wake-up is worth
# no flush (notifications do not survive a server crash anyway).
NOTIFY = f"SET LOCAL synchronous_commit = off; SELECT pg_notify('{WAKE_CHANNEL}', '')"

# One request, one statement (its own transaction, one round trip): the shared event
# insert, and, for a new pending event with a message id, the shared forward-only
# message upsert fed from it. Concurrent commits share WAL flushes (PostgreSQL's own
# group commit). $1-$14 are the event's columns (sql.EVENT_COLUMNS); $15 status_rank,
# $16 status_at, $17 sender_name.
INGEST = f"""
WITH e AS ({numbered(sql.insert_events(1))}),
m AS ({sql.INSERT_MESSAGES}    SELECT $4, $5, $15, $16, $8, $7, $6, $17, $14 FROM e
    WHERE e.duplicates = 0 AND $4::text IS NOT NULL AND $11::text = 'pending'
    {sql.MESSAGE_FORWARD_ONLY}
)
SELECT id, duplicates FROM e
"""

# The shared claim, plus row locks: concurrent workers (any process) skip rows another
# claim is locking instead of waiting and then leasing them twice. READ COMMITTED
# re-checks a row that changed meanwhile (EvalPlanQual), so a lease committed by another
# worker after our snapshot drops the row. Per-message order holds as on SQLite: a later
# event stays blocked while an earlier one is pending, leased or not.
#
# OFFSET 0 keeps the NOT EXISTS a subplan: one probe of events_pending_message (0004)
# per candidate. Flattened into an anti-join, a plan made without statistics (a fresh
# database before its first ANALYZE, or autovacuum off) materialized every pending row
# for every candidate, a cost growing with the square of the backlog. As a subplan the
# worst plan probes each pending row once, until the ANALYZE a slow claim triggers
# (PostgresStore.claim; docs/postgresql.md).
LEASE = numbered(
    sql.LEASE.format(
        claimable=sql.CLAIMABLE.format(fence=" OFFSET 0", lock="\nFOR UPDATE OF e SKIP LOCKED")
    )
)
# The claim and the handler runs of the events it leased, in one round trip: one row per
# (event, run), the run's columns NULL for an event without runs yet.
#
# The runs are read per leased event (LATERAL, kept unflattened by OFFSET 0): one probe
# of handler_runs' primary key each. As a plain join, a plan made without statistics on
# handler_runs (autovacuum off or behind) hashed the leased rows and read the whole
# table on every claim, which grows by a row per handler run.
CLAIM = f"""
WITH leased AS ({LEASE})
SELECT l.*, r.handler, r.state, r.attempts, r.last_error
FROM leased l LEFT JOIN LATERAL (
    SELECT handler, state, attempts, last_error FROM handler_runs
    WHERE event_id = l.id OFFSET 0
) r ON true
"""

# Every completion of a batch in one statement (one round trip, its own transaction):
# the events still leased by $1 take their next state and give their lease back, and
# the runs of those events only are recorded (a former owner's results are dropped: the
# new owner's record wins). Returns the ids finished. Rows come sorted by event id, so
# concurrent batches lock events in the same order.
COMPLETE = """
WITH done AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::text[], $6::float8[])
        AS d(id, state, run_after, last_error, finished_at)
), finished AS (
    UPDATE events e SET state = d.state, run_after = d.run_after, last_error = d.last_error,
                        attempts = e.attempts + 1, lease_owner = NULL, lease_until = NULL,
                        finished_at = d.finished_at
    FROM done d
    WHERE e.id = d.id AND e.lease_owner = $1
    RETURNING e.id
), runs AS (
    INSERT INTO handler_runs (event_id, handler, state, attempts, last_error, updated_at)
    SELECT r.event_id, r.handler, r.state, r.attempts, r.last_error, $12::float8
    FROM unnest($7::bigint[], $8::text[], $9::text[], $10::int[], $11::text[])
        AS r(event_id, handler, state, attempts, last_error)
    WHERE r.event_id IN (SELECT id FROM finished)
    ON CONFLICT (event_id, handler) DO UPDATE SET
        state = excluded.state, attempts = excluded.attempts,
        last_error = excluded.last_error, updated_at = excluded.updated_at
)
SELECT id FROM finished
"""

# statistics.py: does `events` hold rows without ever having been analyzed? (NULL, as
# false, when the statistics system does not know the table.)
NEVER_ANALYZED = """
SELECT (SELECT last_analyze IS NULL AND last_autoanalyze IS NULL
        FROM pg_stat_user_tables WHERE relid = 'events'::regclass)
   AND EXISTS (SELECT 1 FROM events)
"""
ANALYZE_EVENTS = "ANALYZE events"

# schema_migrations as in receiver/store/migrate.py, with a double-precision timestamp
# (PostgreSQL's REAL is 4 bytes: epoch seconds would lose minutes).
CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"
# Session advisory lock held while migrating: replicas starting together queue on it,
# and the first one applies what is missing. Any fixed 64-bit key; this spells "mtarecv".
MIGRATION_LOCK = 0x6D7461726563760


# Errors meaning "the database cannot be reached or written now": a 503 and a retry.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    # The connection was lost mid-operation: asyncpg then refuses the next one on it
    # ("cannot switch to state 11; another operation is in progress").
    asyncpg.InternalClientError,
    asyncpg.exceptions.ConnectionFailureError,
)


@contextlib.contextmanager
def translated(what: str = "PostgreSQL") -> Iterator[None]:
    """Driver errors become `StoreUnavailable` or `StoreError`; our own pass through."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"{what}: {type(exc).__name__}: {exc}") from exc
