-- Several MTA accounts in one database (docs/accounts.md). MTA's message ids are per
-- account, so every table keyed by a message id or a phone number is keyed by
-- (account, ...) instead. Rows stored before accounts existed belong to the account the
-- environment configures, 'default', and keep their values: nothing is rewritten.
-- An event's dedup key stays globally unique: another account's keys carry its name
-- (receiver/mta/events.py: account_key), the default account's are as they were.
-- ADD COLUMN with a constant default rewrites no rows (PostgreSQL 11+). The new primary
-- keys are built under the table's exclusive lock: webhooks wait (then are answered, or
-- get a 503 that MTA retries) while messages' key is built, seconds per million messages;
-- docs/accounts.md says to upgrade a large database at a quiet hour.
ALTER TABLE events ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE backfill_runs ADD COLUMN account TEXT NOT NULL DEFAULT 'default';

ALTER TABLE messages ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (account, message_id);

ALTER TABLE resends ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE resends DROP CONSTRAINT resends_pkey,
    ADD PRIMARY KEY (account, original_message_id);

ALTER TABLE opt_outs ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE opt_outs DROP CONSTRAINT opt_outs_pkey, ADD PRIMARY KEY (account, phone);
-- RECEIVER_OPT_OUT_SCOPE=global asks by phone across accounts.
CREATE INDEX opt_outs_phone ON opt_outs (phone);

ALTER TABLE sent_messages ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sent_messages DROP CONSTRAINT sent_messages_pkey,
    ADD PRIMARY KEY (account, message_id);
