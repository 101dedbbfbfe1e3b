-- Several MTA accounts in one database (docs/accounts.md). MTA's message ids are per
-- account, so every table keyed by a message id or a phone number is keyed by
-- (account, ...) instead. Rows stored before accounts existed belong to the account the
-- environment configures, 'default', and keep their values: nothing is rewritten.
-- An event's dedup key stays globally unique: another account's keys carry its name
-- (receiver/mta/events.py: account_key), the default account's are as they were.
ALTER TABLE events ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE backfill_runs ADD COLUMN account TEXT NOT NULL DEFAULT 'default';

-- SQLite cannot change a primary key in place: each table is copied into its new shape.
CREATE TABLE messages_by_account (
    account TEXT NOT NULL DEFAULT 'default',
    message_id TEXT NOT NULL,
    status INTEGER,
    status_rank INTEGER NOT NULL,
    status_at REAL,
    first_seen REAL NOT NULL,
    phone TEXT,
    external_id TEXT,
    sender_name TEXT,
    PRIMARY KEY (account, message_id)
);
INSERT INTO messages_by_account (message_id, status, status_rank, status_at, first_seen,
                                 phone, external_id, sender_name)
SELECT message_id, status, status_rank, status_at, first_seen, phone, external_id, sender_name
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_by_account RENAME TO messages;

CREATE TABLE resends_by_account (
    account TEXT NOT NULL DEFAULT 'default',
    original_message_id TEXT NOT NULL,
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
    updated_at REAL NOT NULL,
    PRIMARY KEY (account, original_message_id)
);
INSERT INTO resends_by_account (original_message_id, state, reason, phone, text, tags,
    original_external_id, external_id, request_id, failure_status, failed_at, due_at,
    attempts, lease_owner, lease_until, sent_at, resend_message_id, mta_request_id,
    double_delivery, updated_at)
SELECT original_message_id, state, reason, phone, text, tags, original_external_id,
    external_id, request_id, failure_status, failed_at, due_at, attempts, lease_owner,
    lease_until, sent_at, resend_message_id, mta_request_id, double_delivery, updated_at
FROM resends;
DROP TABLE resends;
ALTER TABLE resends_by_account RENAME TO resends;
CREATE INDEX resends_due ON resends (due_at) WHERE state IN ('scheduled', 'sending', 'reconciling');
CREATE INDEX resends_resend_message ON resends (resend_message_id);

CREATE TABLE opt_outs_by_account (
    account TEXT NOT NULL DEFAULT 'default',
    phone TEXT NOT NULL,
    source TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (account, phone)
);
INSERT INTO opt_outs_by_account (phone, source, at) SELECT phone, source, at FROM opt_outs;
DROP TABLE opt_outs;
ALTER TABLE opt_outs_by_account RENAME TO opt_outs;
-- RECEIVER_OPT_OUT_SCOPE=global asks by phone across accounts.
CREATE INDEX opt_outs_phone ON opt_outs (phone);

CREATE TABLE sent_messages_by_account (
    account TEXT NOT NULL DEFAULT 'default',
    message_id TEXT NOT NULL,
    external_id TEXT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    sender_name TEXT,
    tags TEXT,
    sent_at REAL NOT NULL,
    PRIMARY KEY (account, message_id)
);
INSERT INTO sent_messages_by_account (message_id, external_id, phone, text, sender_name,
                                      tags, sent_at)
SELECT message_id, external_id, phone, text, sender_name, tags, sent_at FROM sent_messages;
DROP TABLE sent_messages;
ALTER TABLE sent_messages_by_account RENAME TO sent_messages;
CREATE INDEX sent_messages_external ON sent_messages (external_id);
