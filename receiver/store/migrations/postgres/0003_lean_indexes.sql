-- Fewer index writes per webhook, and a cheap dead-letter count.
-- events_pending_message was only read by the claim's "no earlier pending event of this
-- message" check, which events_message serves as well (a message has a handful of
-- events); every insert and every finished event paid for it (bench/ingest.py).
DROP INDEX events_pending_message;
-- The dead-letter count (/metrics, dashboard, CLI) reads this instead of the table.
CREATE INDEX events_dead ON events (id) WHERE state = 'dead';
