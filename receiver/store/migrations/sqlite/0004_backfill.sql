-- Where an event came from: 'webhook' (MTA posted it) or 'backfill' (read back from
-- MTA's GET /deliveries after an outage lost the webhook; receiver/backfill/).
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';

-- Named leases across processes: one backfill at a time, whatever the replicas.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);

-- One row per backfill run that finished (the dashboard's line, the metrics' last run).
CREATE TABLE backfill_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cause TEXT NOT NULL,
    since TEXT NOT NULL,
    until TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    rows_read INTEGER NOT NULL,
    held INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    unreadable INTEGER NOT NULL,
    error TEXT
);
