"""storms tests."""
