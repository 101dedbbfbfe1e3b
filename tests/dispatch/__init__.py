"""tests.dispatch."""
