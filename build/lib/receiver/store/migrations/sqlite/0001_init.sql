-- Events as received: one row per distinct event (dedup_key), in receipt order (id).
-- state: pending (the worker owes it handler runs), done, dead (a handler gave up:
-- the dead-letter), quarantined (authentic but unreadable body, kept with its reason).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    message_id TEXT,
    status INTEGER,
    external_id TEXT,
    phone TEXT,
    received_at REAL NOT NULL,
    secret_index INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    duplicates INTEGER NOT NULL DEFAULT 0,
    finished_at REAL
);
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_pending_message ON events (message_id, id) WHERE state = 'pending';
CREATE INDEX events_message ON events (message_id);
CREATE INDEX events_received ON events (received_at);

-- One row per (event, handler) that ran: a retry re-runs only what did not finish.
CREATE TABLE handler_runs (
    event_id INTEGER NOT NULL,
    handler TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (event_id, handler)
);

-- The latest status of each message, moved forward only (receiver/mta/statuses.py: rank).
CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    status INTEGER,
    status_rank INTEGER NOT NULL,
    status_at REAL,
    first_seen REAL NOT NULL,
    phone TEXT,
    external_id TEXT,
    sender_name TEXT
);

-- Liveness of processes that write (readyz probe, worker listing).
CREATE TABLE heartbeats (
    owner TEXT PRIMARY KEY,
    at REAL NOT NULL
);
