-- PostgreSQL only. 0004 tells operators to pre-build events_pending_message with
-- CREATE INDEX CONCURRENTLY; a build that failed or was cancelled leaves an invalid
-- index of that name, which 0004's IF NOT EXISTS accepted and the planner never uses
-- (the claim keeps its slow plan). Here an invalid one is dropped and built again; a
-- valid one is left as it is.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index
               WHERE indexrelid = to_regclass('events_pending_message') AND NOT indisvalid)
    THEN
        DROP INDEX events_pending_message;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS events_pending_message ON events (message_id, id)
    WHERE state = 'pending';
