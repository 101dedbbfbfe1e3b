-- PostgreSQL only. The claim's "no earlier pending event of this message" probe needs
-- one index on (message_id, id) over pending rows. Without it PostgreSQL combined
-- events_pending (id < candidate) with events_message in a bitmap: every probe read all
-- pending entries below the candidate, and the entries of finished events too until a
-- VACUUM removes them (bench/ingest.py --postgres: the drain fell to ~100 events/s,
-- then to minutes per claim). SQLite reads events_message alone and keeps no dead
-- entries: its inserts stay lean (0003).
--
-- Building it reads the whole events table (only pending rows go in) and holds a lock
-- that pauses webhook inserts meanwhile, longer the bigger the table. To build it
-- without that pause on a big, busy database, run this first (outside a transaction);
-- the migration then finds it:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS events_pending_message
--       ON events (message_id, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_pending_message ON events (message_id, id)
    WHERE state = 'pending';
