"""The `log` transport: one JSON line per event on stdout (local development, debugging)."""

from __future__ import annotations

import sys
from typing import TextIO

from arus.outbox.transports.base import OutboxEvent


class LogTransport:
    name = "log"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def publish(self, events: list[OutboxEvent]) -> None:
        stream = self._stream or sys.stdout
        for event in events:
            stream.write(event.payload().decode() + "\n")
        stream.flush()

    def close(self) -> None:
        pass
