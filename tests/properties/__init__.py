"""properties tests."""
