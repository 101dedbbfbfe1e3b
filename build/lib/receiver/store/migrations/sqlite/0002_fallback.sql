-- iMessage -> SMS fallback (handlers/fallback.py, receiver/fallback/outbox.py).
-- One row per original message considered for a resend. The primary key is the
-- exactly-once claim: scheduling a resend is the INSERT that wins it.
-- state: scheduled, sending, reconciling (outcome unknown, waiting for a webhook),
-- sent, delivered, failed, rejected, unknown (an operator decides), cancelled, skipped.
CREATE TABLE resends (
    original_message_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    phone TEXT,
    text TEXT,
    tags TEXT,
    original_external_id TEXT,
    external_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    failure_status INTEGER,
    failed_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    sent_at REAL,
    resend_message_id TEXT,
    mta_request_id TEXT,
    double_delivery INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX resends_due ON resends (due_at) WHERE state IN ('scheduled', 'sending', 'reconciling');
CREATE INDEX resends_resend_message ON resends (resend_message_id);

-- Numbers that opted out (status 11 or a STOP reply); an opt-in removes the row.
CREATE TABLE opt_outs (
    phone TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    at REAL NOT NULL
);

-- Messages sent through our own send path: the text and route MTA's webhooks may lack.
CREATE TABLE sent_messages (
    message_id TEXT PRIMARY KEY,
    external_id TEXT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    sender_name TEXT,
    tags TEXT,
    sent_at REAL NOT NULL
);
CREATE INDEX sent_messages_external ON sent_messages (external_id);
