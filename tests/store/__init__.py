"""tests.store."""
