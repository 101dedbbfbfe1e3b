-- Events as received: one row per distinct event (dedup_key), in receipt order (id).
-- state: pending (the worker owes it handler runs), done, dead (a handler gave up:
-- the dead-letter), quarantined (authentic but unreadable body, kept with its reason).
-- Mirrors migrations/sqlite/0001_init.sql: same tables and columns, so the SQL in
-- receiver/store/sql.py and receiver/fallback/resends.py runs on both.
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    message_id TEXT,
    status INTEGER,
    external_id TEXT,
    phone TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    secret_index INTEGER NOT NULL,
    body BYTEA NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    last_error TEXT,
    duplicates INTEGER NOT NULL DEFAULT 0,
    finished_at DOUBLE PRECISION
);
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_pending_message ON events (message_id, id) WHERE state = 'pending';
CREATE INDEX events_message ON events (message_id);
CREATE INDEX events_received ON events (received_at);

-- One row per (event, handler) that ran: a retry re-runs only what did not finish.
CREATE TABLE handler_runs (
    event_id BIGINT NOT NULL,
    handler TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, handler)
);

-- The latest status of each message, moved forward only (receiver/mta/statuses.py: rank).
CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    status INTEGER,
    status_rank INTEGER NOT NULL,
    status_at DOUBLE PRECISION,
    first_seen DOUBLE PRECISION NOT NULL,
    phone TEXT,
    external_id TEXT,
    sender_name TEXT
);

-- Liveness of processes that write (readyz probe, worker listing).
CREATE TABLE heartbeats (
    owner TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL
);
