"""Backfill: repair the statuses whose webhooks MTA gave up on, from GET /deliveries."""
