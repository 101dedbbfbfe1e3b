-- Fewer index writes per webhook; a cheap dead-letter count and lease renewal.
-- events_pending_message was only read by the claim's "no earlier pending event of this
-- message" check, which events_message serves as well (a message has a handful of
-- events); every insert and every finished event paid for it (bench/ingest.py).
DROP INDEX events_pending_message;
-- The dead-letter count (/metrics, dashboard, CLI) reads this instead of the table.
CREATE INDEX events_dead ON events (id) WHERE state = 'dead';
-- The worker's heartbeat renews (and shutdown releases) its leases by owner: without
-- this it read every pending event, 37 ms on the loop with a backlog of 92,000. Only
-- leased rows are in it, so an insert never touches it.
CREATE INDEX events_leased ON events (lease_owner) WHERE lease_owner IS NOT NULL;
