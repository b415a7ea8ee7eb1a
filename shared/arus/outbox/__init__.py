"""The outbox layer: the relay and its transports (SPEC §4)."""
