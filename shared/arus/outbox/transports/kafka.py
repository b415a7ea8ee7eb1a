"""The `kafka` transport: an idempotent confluent-kafka producer, every delivery confirmed.

One message per outbox event on `settings.kafka_topic` (SPEC §4: `arus.ledger.events`):
key = ledger_id (so one ledger's events share a partition and keep their order), value = the
envelope's JSON, headers `event_id` and `event_type`. `publish` returns only when the broker has
acknowledged every message of the batch (acks=all); a message with an error, or without any
delivery report by the deadline, raises PublishError and the relay rolls the batch back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from arus.outbox.transports.base import OutboxEvent, PublishError
from arus.platform.config import ConfigError, Settings

DeliveryReport = Callable[[KafkaError | None, Message], None]

log = logging.getLogger("arus.outbox.transports.kafka")

# librdkafka gives up on a message after this long (retries included) and reports it as
# failed; the flush deadline is a little longer so every message has a report by then.
DELIVERY_TIMEOUT_S = 20.0
FLUSH_MARGIN_S = 5.0
# How long `produce` may wait for room in librdkafka's local queue before the batch fails.
QUEUE_FULL_WAIT_S = 5.0


class KafkaTransport:
    name = "kafka"

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        assert bootstrap and topic and delivery_timeout_s > 0
        self.topic = topic
        self._delivery_timeout_s = delivery_timeout_s
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            # Exactly-once per partition on the producer side: retries cannot duplicate or
            # reorder, and acks=all means every in-sync replica has the message.
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(delivery_timeout_s * 1000),
            # Same key -> same partition as the Java client computes (murmur2), so consumers in
            # any language agree on where a ledger's events live.
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "error_cb": self._on_client_error,
            # librdkafka's own log lines go through Python logging (not straight to stderr),
            # under a logger of their own that operators can quieten.
            "logger": logging.getLogger("arus.outbox.transports.kafka.librdkafka"),
            **(extra_config or {}),
        }
        self._producer: Producer | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaTransport:
        if not settings.kafka_bootstrap:
            raise ConfigError("ARUS_OUTBOX_TRANSPORT=kafka needs ARUS_KAFKA_BOOTSTRAP")
        return cls(bootstrap=settings.kafka_bootstrap, topic=settings.kafka_topic)

    def _on_client_error(self, error: KafkaError) -> None:
        # Connection trouble is retried inside librdkafka and surfaces per message as a
        # delivery error; a fatal error means this producer instance is finished.
        if error.fatal():
            log.error("kafka producer fatal error, it will be recreated: %s", error.str())
            self._discard_producer()
        elif error.code() == KafkaError._TRANSPORT:
            log.debug("kafka connection error (retried): %s", error.str())
        else:
            log.warning("kafka client error: %s", error.str())

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
        return self._producer

    def _discard_producer(self) -> None:
        # Dropping the reference lets the next publish start a fresh idempotent session.
        self._producer = None

    def publish(self, events: list[OutboxEvent]) -> None:
        if not events:
            return
        producer = self._get_producer()
        # reports[i] stays None until message i has its delivery report, then holds the error
        # text or "" for success. Reports arrive on this thread, from poll() and flush().
        reports: list[str | None] = [None] * len(events)

        def reporter(index: int) -> DeliveryReport:
            def on_delivery(error: KafkaError | None, _message: Message) -> None:
                reports[index] = "" if error is None else error.str()

            return on_delivery

        for index, event in enumerate(events):
            try:
                self._produce(producer, event, reporter(index))
            except (BufferError, KafkaException) as exc:
                # Nothing of this message reached the queue: it can never be confirmed.
                reports[index] = f"not queued: {exc}"
                break
        producer.flush(self._delivery_timeout_s + FLUSH_MARGIN_S)

        failed = [(i, text) for i, text in enumerate(reports) if text]
        missing = [i for i, text in enumerate(reports) if text is None]
        if failed or missing:
            first = failed[0][1] if failed else "no delivery report before the deadline"
            raise PublishError(
                f"{len(failed) + len(missing)} of {len(events)} Kafka messages to "
                f"{self.topic!r} were not confirmed (first problem: {first})"
            )

    def _produce(self, producer: Producer, event: OutboxEvent, on_delivery: DeliveryReport) -> None:
        waited_s = 0.0
        while True:
            try:
                producer.produce(
                    self.topic,
                    key=event.ledger_id.encode(),
                    value=event.payload(),
                    headers=[
                        ("event_id", event.event_id.encode()),
                        ("event_type", event.event_type.encode()),
                    ],
                    on_delivery=on_delivery,
                )
                producer.poll(0)
                return
            except BufferError:
                # The local queue is full: serve delivery reports to make room, bounded.
                if waited_s >= QUEUE_FULL_WAIT_S:
                    raise
                producer.poll(0.1)
                waited_s += 0.1

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            remaining = producer.flush(self._delivery_timeout_s + FLUSH_MARGIN_S)
            if remaining:
                log.warning("kafka producer closed with %d undelivered messages", remaining)
            producer.close()
