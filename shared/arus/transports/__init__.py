"""Outbox transports behind one small interface, chosen by ARUS_OUTBOX_TRANSPORT."""

from __future__ import annotations

from arus.platform.config import Settings
from arus.transports.base import OutboxEvent, PublishError, Transport

__all__ = ["OutboxEvent", "PublishError", "Transport", "make_transport"]


def make_transport(settings: Settings) -> Transport:
    if settings.outbox_transport == "kafka":
        from arus.transports.kafka import KafkaTransport

        return KafkaTransport.from_settings(settings)
    if settings.outbox_transport == "pubsub":
        from arus.transports.pubsub import PubSubTransport

        return PubSubTransport.from_settings(settings)
    from arus.transports.log import LogTransport

    return LogTransport()
