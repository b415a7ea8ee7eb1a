"""Administration: migrations, ledgers and keys (never on the hot path)."""
