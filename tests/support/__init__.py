"""Test helpers (no tests): imported by the tests, never collected. The fixtures that live beside
their helpers (brokers.py, http_faults.py) are registered once, by tests/conftest.py."""
