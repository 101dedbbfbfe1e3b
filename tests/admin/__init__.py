"""tests.admin."""
