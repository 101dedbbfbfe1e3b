"""tests.mta."""
