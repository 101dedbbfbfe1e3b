"""tests.web."""
