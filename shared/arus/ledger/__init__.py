"""The ledger: the posting engine's SQL (`sql/`) and how migrations apply it."""
