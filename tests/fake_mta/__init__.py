"""tests.fake_mta."""
