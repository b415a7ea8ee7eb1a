"""Test helpers (no fixtures, no tests): imported by the tests, never collected."""
