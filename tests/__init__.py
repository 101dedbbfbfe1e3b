"""mta-receiver tests."""
