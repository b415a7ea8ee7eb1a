"""Outbox transports behind one small interface, chosen by ARUS_OUTBOX_TRANSPORT."""

from __future__ import annotations

from arus.outbox.transports.base import OutboxEvent, PublishError, Transport
from arus.platform.config import Settings

__all__ = ["OutboxEvent", "PublishError", "Transport", "make_transport"]


def make_transport(settings: Settings) -> Transport:
    if settings.outbox_transport == "kafka":
        from arus.outbox.transports.kafka import KafkaTransport

        return KafkaTransport.from_settings(settings)
    if settings.outbox_transport == "pubsub":
        from arus.outbox.transports.pubsub import PubSubTransport

        return PubSubTransport.from_settings(settings)
    from arus.outbox.transports.log import LogTransport

    return LogTransport()
