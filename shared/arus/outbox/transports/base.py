"""The transport interface: publish a batch and confirm every message, or raise."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


class PublishError(RuntimeError):
    """Some messages of a batch were not confirmed; the batch stays unpublished."""


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row: the SPEC §4 envelope plus what brokers route on.

    `envelope_json` is the envelope exactly as PostgreSQL stored it; it is published byte for
    byte, never decoded and re-encoded on the relay's hot path.
    """

    outbox_id: int
    event_id: str
    event_type: str
    ledger_id: str
    envelope_json: str

    @classmethod
    def from_envelope(cls, outbox_id: int, envelope: dict[str, Any]) -> OutboxEvent:
        return cls(
            outbox_id=outbox_id,
            event_id=str(envelope["event_id"]),
            event_type=str(envelope["event_type"]),
            ledger_id=str(envelope["ledger_id"]),
            envelope_json=json.dumps(envelope, separators=(",", ":"), sort_keys=True),
        )

    @property
    def envelope(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.envelope_json)
        return decoded

    def payload(self) -> bytes:
        return self.envelope_json.encode()


class Transport(Protocol):
    name: str

    def publish(self, events: list[OutboxEvent]) -> None:
        """Deliver every event and wait for each confirmation; raise PublishError otherwise.

        Returning means all of them are durably accepted by the broker, so the relay may mark
        the batch published in the same transaction that claimed it.
        """

    def close(self) -> None: ...
