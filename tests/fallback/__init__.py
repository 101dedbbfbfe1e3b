"""tests.fallback."""
