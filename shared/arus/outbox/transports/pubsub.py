"""The `pubsub` transport: google-cloud-pubsub with ordering keys, every future confirmed.

One message per outbox event on `settings.pubsub_topic` (`projects/P/topics/T`): data = the
envelope's JSON, ordering key = ledger_id (one ledger's events are delivered in order to an
ordered subscription), attributes `event_id`, `event_type`, `ledger_id` (SPEC §4). `publish`
returns only when every publish future has resolved with a message id.

Retries. With message ordering enabled the client would retry a failed publish forever in a
background thread, so a relay run could neither finish within its budget nor know the outcome.
We turn the client's retry off and retry here instead, a bounded number of times and within a
deadline: after a failure the client pauses that ordering key, so we resume it and publish the
key's unconfirmed messages again, in their order. If they still fail, PublishError: the relay
rolls the batch back and its next run publishes it again (at-least-once, consumers dedupe).
Setting PUBSUB_EMULATOR_HOST makes the client talk to an emulator over an insecure channel.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import time
from collections.abc import Callable

from google.api_core import exceptions as api_exceptions
from google.cloud.pubsub_v1 import PublisherClient
from google.cloud.pubsub_v1.types import PublisherOptions

from arus.outbox.transports.base import OutboxEvent, PublishError
from arus.platform.config import ConfigError, Settings

log = logging.getLogger("arus.outbox.transports.pubsub")

TOPIC_PATH = re.compile(r"^projects/[^/]+/topics/[^/]+$")
RPC_TIMEOUT_S = 10.0  # one Publish call
PUBLISH_TIMEOUT_S = 30.0  # the whole batch, retries included
MAX_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.25


class PubSubTransport:
    name = "pubsub"

    def __init__(
        self,
        *,
        topic: str,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not TOPIC_PATH.match(topic):
            raise ConfigError(
                "ARUS_PUBSUB_TOPIC must be a full path: projects/PROJECT/topics/TOPIC"
            )
        assert 0 < rpc_timeout_s <= publish_timeout_s and 1 <= max_attempts <= 10
        self.topic = topic
        self._rpc_timeout_s = rpc_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._publisher = PublisherClient(
            publisher_options=PublisherOptions(
                enable_message_ordering=True, retry=None, timeout=rpc_timeout_s
            )
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PubSubTransport:
        if not settings.pubsub_topic:
            raise ConfigError("ARUS_OUTBOX_TRANSPORT=pubsub needs ARUS_PUBSUB_TOPIC")
        return cls(topic=settings.pubsub_topic)

    def publish(self, events: list[OutboxEvent]) -> None:
        if not events:
            return
        deadline = time.monotonic() + self._publish_timeout_s
        pending = list(events)
        problems: list[str] = []
        for attempt in range(1, self._max_attempts + 1):
            pending, problems = self._publish_once(pending, deadline)
            if not pending:
                return
            if attempt == self._max_attempts or time.monotonic() >= deadline:
                break
            log.warning(
                "pubsub: %d of %d messages unconfirmed (attempt %d): %s",
                len(pending), len(events), attempt, problems[0],
            )  # fmt: skip
            self._sleep(RETRY_BACKOFF_S * attempt)
        raise PublishError(
            f"{len(pending)} of {len(events)} Pub/Sub messages to {self.topic!r} were not "
            f"confirmed after {attempt} attempt(s) (first problem: {problems[0]})"
        )

    def _publish_once(
        self, events: list[OutboxEvent], deadline: float
    ) -> tuple[list[OutboxEvent], list[str]]:
        """Publish `events`, wait for every future; return the unconfirmed ones and why."""
        futures = [
            self._publisher.publish(
                self.topic,
                event.payload(),
                ordering_key=event.ledger_id,
                event_id=event.event_id,
                event_type=event.event_type,
                ledger_id=event.ledger_id,
            )
            for event in events
        ]
        concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        unconfirmed: list[OutboxEvent] = []
        problems: list[str] = []
        failed_keys: set[str] = set()
        for event, future in zip(events, futures, strict=True):
            if not future.done():
                unconfirmed.append(event)
                problems.append("no confirmation before the deadline")
                continue
            error = future.exception()
            if error is not None:
                unconfirmed.append(event)
                problems.append(_describe(error))
                failed_keys.add(event.ledger_id)
        # A failure pauses its ordering key in the client: later publishes on it fail at once
        # until it is resumed. Resume so the retry, or the relay's next run, can go ahead.
        for ordering_key in sorted(failed_keys):
            self._resume(ordering_key)
        return unconfirmed, problems

    def _resume(self, ordering_key: str) -> None:
        try:
            self._publisher.resume_publish(self.topic, ordering_key)
        except RuntimeError:
            pass  # the key was not paused (for example it failed without pausing)

    def close(self) -> None:
        try:
            self._publisher.stop()
        except RuntimeError:
            pass  # already stopped
        self._publisher.transport.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, api_exceptions.GoogleAPICallError):
        return f"{type(error).__name__}: {error.message}"
    return f"{type(error).__name__}: {error}"
