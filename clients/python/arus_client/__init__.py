"""arus-client: the consumer side of Arus, a distribution of its own (SPEC §1).

- `arus_client.client`: the typed HTTP client (httpx only).
- `arus_client.shadow`: shadow writes, mirroring a consumer app's own transactions into a
  ledger through its own outbox table (needs SQLAlchemy, for the consumer's own database).
- `arus_client.events`: consumer-side dedupe of the event stream, by event id.
- `arus_client.reference_consumer` (`arus-consume`): balances mirrored from Kafka, drift
  against the API; it reads only the stream, its own tables and the API.

Nothing here imports the server package `arus`, and the server's function bundles carry none
of it (tests/integration/test_bundle.py).
"""
