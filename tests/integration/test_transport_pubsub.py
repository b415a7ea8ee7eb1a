"""The Pub/Sub transport through the real google-cloud-pubsub client, SPEC §4.

The client talks gRPC to a Publisher service this test process serves (PUBSUB_EMULATOR_HOST
points at it): attributes, ordering keys and payloads are checked on the wire, and a server
that refuses publishes leaves the rows unpublished with the error reported, until it recovers.
A last test runs against Google's Pub/Sub emulator when the Cloud SDK component is installed.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa
from arus.ledger.schema import outbox_events
from arus.outbox.relay import drain
from arus.outbox.transports import make_transport
from arus.outbox.transports.pubsub import PubSubTransport
from arus.platform.config import ConfigError

from tests.support.brokers import PublisherServer, pending_rows

TOPIC = "projects/arus-test/topics/ledger-events"


def pubsub_settings(settings, topic: str = TOPIC):
    return dataclasses.replace(settings, outbox_transport="pubsub", pubsub_topic=topic)


def some_activity(api, ledger, entries: int) -> None:
    api.account(ledger, "cash", "asset", allow_negative=True)
    api.account(ledger, "sales", "revenue")
    for i in range(entries):
        response = api.transfer(ledger, "cash", "sales", 10 + i)
        assert response.status_code == 201, response.get_json()


def stored_envelopes(engine, *ledger_ids) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox_events.c.event_id, outbox_events.c.envelope).where(
                outbox_events.c.ledger_id.in_(ledger_ids)
            )
        )
        return {str(row.event_id): row.envelope for row in rows}


def test_every_event_is_published_with_attributes_and_ledger_ordering_key(
    api, ledger, other_ledger, engine, settings, pubsub_server: PublisherServer, empty_outbox
):
    some_activity(api, ledger, 6)
    some_activity(api, other_ledger, 4)
    transport = make_transport(pubsub_settings(settings))
    assert isinstance(transport, PubSubTransport)
    try:
        outcome = drain(engine, transport, batch_size=5, time_budget_s=60)
    finally:
        transport.close()
    assert (outcome.error, outcome.published) == (None, 14)
    assert pending_rows(engine) == 0

    stored = stored_envelopes(engine, ledger.ledger_id, other_ledger.ledger_id)
    received = pubsub_server.messages
    assert len(received) == len(stored) == 14
    seqs: dict[str, list[int]] = {}
    for topic, message in received:
        envelope = json.loads(message.data)
        assert topic == TOPIC
        assert envelope == stored[envelope["event_id"]], "the payload is the stored envelope"
        assert dict(message.attributes) == {
            "event_id": envelope["event_id"],
            "event_type": envelope["event_type"],
            "ledger_id": envelope["ledger_id"],
        }
        assert message.ordering_key == envelope["ledger_id"]
        if envelope["event_type"] == "entry.committed":
            seqs.setdefault(message.ordering_key, []).append(envelope["ledger_seq"])
    assert seqs == {str(ledger.ledger_id): [1, 2, 3, 4, 5, 6],
                    str(other_ledger.ledger_id): [1, 2, 3, 4]}  # fmt: skip


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_failed_publish_leaves_rows_unpublished_until_the_server_recovers(
    api, ledger, engine, pubsub_server: PublisherServer, empty_outbox, code
):
    some_activity(api, ledger, 3)
    pubsub_server.fail(code)
    transport = PubSubTransport(topic=TOPIC, rpc_timeout_s=5, publish_timeout_s=20)
    try:
        failed = drain(engine, transport, batch_size=10, time_budget_s=60)
        assert failed.error is not None and failed.error.startswith("pubsub publish failed:")
        assert "5 of 5 Pub/Sub messages" in failed.error, failed.error
        assert failed.published == 0
        assert pending_rows(engine, ledger.ledger_id) == 5
        assert pubsub_server.failed_calls >= 3 and pubsub_server.messages == []

        # The same client again: the failure paused the ledger's ordering key, and the
        # transport resumed it, so the next run can publish.
        pubsub_server.recover()
        outcome = drain(engine, transport, batch_size=10, time_budget_s=60)
    finally:
        transport.close()
    assert (outcome.error, outcome.published) == (None, 5)
    assert pending_rows(engine, ledger.ledger_id) == 0
    received = [json.loads(m.data)["event_id"] for _, m in pubsub_server.messages]
    assert sorted(received) == sorted(stored_envelopes(engine, ledger.ledger_id))


def test_a_transient_failure_is_retried_within_the_batch(
    api, ledger, engine, pubsub_server: PublisherServer, empty_outbox
):
    some_activity(api, ledger, 2)
    pubsub_server.fail(grpc.StatusCode.UNAVAILABLE, calls=1)
    transport = PubSubTransport(topic=TOPIC, rpc_timeout_s=5, publish_timeout_s=20)
    try:
        outcome = drain(engine, transport, batch_size=10, time_budget_s=60)
    finally:
        transport.close()
    assert (outcome.error, outcome.published) == (None, 4)
    assert pubsub_server.failed_calls == 1
    assert len(pubsub_server.messages) == 4, "the refused call was republished once"


def test_pubsub_transport_needs_a_full_topic_path(settings, pubsub_server):
    with pytest.raises(ConfigError, match="ARUS_PUBSUB_TOPIC"):
        make_transport(dataclasses.replace(settings, outbox_transport="pubsub"))
    with pytest.raises(ConfigError, match="projects/PROJECT/topics/TOPIC"):
        make_transport(pubsub_settings(settings, "ledger-events"))


def test_round_trip_through_the_pubsub_emulator(
    api, ledger, engine, settings, pubsub_emulator, monkeypatch, empty_outbox
):
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    suffix = uuid.uuid4().hex[:8]
    topic = f"projects/arus-test/topics/events-{suffix}"
    subscription = f"projects/arus-test/subscriptions/mirror-{suffix}"
    admin = PublisherClient()
    subscriber = SubscriberClient()
    try:
        admin.create_topic(name=topic)
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "enable_message_ordering": True}
        )
        some_activity(api, ledger, 5)
        transport = make_transport(pubsub_settings(settings, topic))
        try:
            outcome = drain(engine, transport, batch_size=3, time_budget_s=60)
        finally:
            transport.close()
        assert (outcome.error, outcome.published) == (None, 7)

        stored = stored_envelopes(engine, ledger.ledger_id)
        pulled = []
        deadline = time.monotonic() + 30
        while len(pulled) < len(stored) and time.monotonic() < deadline:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=10
            )
            pulled.extend(m.message for m in response.received_messages)
            if response.received_messages:
                subscriber.acknowledge(
                    request={"subscription": subscription,
                             "ack_ids": [m.ack_id for m in response.received_messages]}
                )  # fmt: skip
    finally:
        subscriber.close()
        admin.transport.close()
    assert len(pulled) == len(stored) == 7
    for message in pulled:
        envelope = json.loads(message.data)
        assert envelope == stored[envelope["event_id"]]
        assert dict(message.attributes) == {
            "event_id": envelope["event_id"],
            "event_type": envelope["event_type"],
            "ledger_id": envelope["ledger_id"],
        }
        assert message.ordering_key == str(ledger.ledger_id)
    seqs = [
        json.loads(m.data)["ledger_seq"]
        for m in pulled
        if json.loads(m.data)["event_type"] == "entry.committed"
    ]
    assert seqs == [1, 2, 3, 4, 5], "an ordered subscription delivers a ledger's events in order"
