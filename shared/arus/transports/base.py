"""The transport interface: publish a batch and confirm every message, or raise."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


class PublishError(RuntimeError):
    """Some messages of a batch were not confirmed; the batch stays unpublished."""


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row: the SPEC §4 envelope plus what brokers route on."""

    outbox_id: int
    event_id: str
    event_type: str
    ledger_id: str
    envelope: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.envelope, separators=(",", ":"), sort_keys=True).encode()


class Transport(Protocol):
    name: str

    def publish(self, events: list[OutboxEvent]) -> None:
        """Deliver every event and wait for each confirmation; raise PublishError otherwise.

        Returning means all of them are durably accepted by the broker, so the relay may mark
        the batch published in the same transaction that claimed it.
        """

    def close(self) -> None: ...
