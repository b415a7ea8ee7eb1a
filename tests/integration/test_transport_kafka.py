"""The Kafka transport end to end against a real Kafka-protocol broker (Tansu), SPEC §4.

Entries posted through the functions reach Kafka through the relay as SPEC §4 envelopes, keyed
by ledger, with the event id in a header; the reference consumer mirrors balances from the
topic with dedupe and commits offsets after its database commits.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from arus.ledger.schema import outbox_events
from arus.outbox.relay import drain
from arus.outbox.transports import OutboxEvent, PublishError, make_transport
from arus.outbox.transports.kafka import KafkaTransport
from arus.platform.config import ConfigError
from arus_client.events import record_event
from arus_client.reference_consumer import consume_kafka, ensure_consumer_schema, mirrored_ledgers
from confluent_kafka import Producer

from tests.support.brokers import (
    SinkTransport,
    free_port,
    kafka_settings,
    mirror_drift,
    pending_rows,
    post_entries,
    read_topic,
    relay_to_kafka,
)

N_ENTRIES = 25
ENVELOPE_KEYS = {"event_id", "event_type", "ledger_id", "ledger_seq", "occurred_at", "data"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_n_entries_give_exactly_n_entry_committed_events_as_in_spec(
    api, ledger, engine, settings, kafka_broker, kafka_topic
):
    posted = post_entries(api, ledger, N_ENTRIES - 1)
    reversal = api.post(
        f"/v1/entries/{posted[1]['id']}/reverse",
        key=ledger.write_key,
        idempotency_key=uuid.uuid4().hex,
        json={},
    )
    assert reversal.status_code == 201, reversal.get_json()

    relay_to_kafka(engine, kafka_settings(settings, kafka_broker, kafka_topic))

    records = [
        r for r in read_topic(kafka_broker.bootstrap, kafka_topic)
        if r.envelope["ledger_id"] == str(ledger.ledger_id)
    ]  # fmt: skip
    unique = {r.envelope["event_id"]: r for r in records}  # consumer-side dedupe by event_id
    entry_events = [r for r in unique.values() if r.envelope["event_type"] == "entry.committed"]
    account_events = [r for r in unique.values() if r.envelope["event_type"] == "account.created"]
    assert len(entry_events) == N_ENTRIES
    assert len(account_events) == 3
    assert len(unique) == len(records), "one relay run without failures delivers no duplicate"

    with engine.connect() as conn:
        stored = {
            str(row.event_id): row.envelope
            for row in conn.execute(
                sa.select(outbox_events.c.event_id, outbox_events.c.envelope).where(
                    outbox_events.c.ledger_id == ledger.ledger_id
                )
            )
        }
    assert set(unique) == set(stored), "every outbox event of the ledger, and nothing else"

    for record in records:
        envelope = record.envelope
        assert set(envelope) == ENVELOPE_KEYS
        assert envelope == stored[envelope["event_id"]], "published exactly as stored"
        assert record.key == str(ledger.ledger_id).encode(), "Kafka key = ledger_id"
        assert record.headers["event_id"].decode() == envelope["event_id"]
        assert record.headers["event_type"].decode() == envelope["event_type"]
        assert TIMESTAMP.match(envelope["occurred_at"])

    for record in entry_events:
        envelope = record.envelope
        served = api.get(f"/v1/entries/{envelope['data']['id']}", key=ledger.read_key)
        assert served.status_code == 200
        assert envelope["ledger_seq"] == envelope["data"]["ledger_seq"]
        if envelope["data"]["id"] == posted[1]["id"]:
            # Published when committed, before its reversal existed.
            assert envelope["data"]["reversed_by"] is None
            assert served.get_json()["reversed_by"] == reversal.get_json()["id"]
        assert {**envelope["data"], "reversed_by": None} == {
            **served.get_json(),
            "reversed_by": None,
        }
    assert sorted(r.envelope["ledger_seq"] for r in entry_events) == list(range(1, N_ENTRIES + 1))

    for record in account_events:
        data = record.envelope["data"]
        served = api.get(f"/v1/accounts/{data['id']}", key=ledger.read_key).get_json()
        assert record.envelope["ledger_seq"] is None
        assert data["balance"] == 0, "an account is created empty"
        assert data["version"] == 0, "and at version 0"
        # entries moved them since
        moved = {"balance": None, "available_balance": None, "version": None}
        assert {**data, **moved} == {**served, **moved}

    # One key, one partition: a ledger's events keep their commit order.
    assert len({r.partition for r in records}) == 1
    in_offset_order = sorted(entry_events, key=lambda r: r.offset)
    seqs = [r.envelope["ledger_seq"] for r in in_offset_order]
    assert seqs == sorted(seqs)


def test_reference_consumer_mirrors_balances_and_dedupes_redelivery(
    api, ledger, engine, settings, kafka_broker, kafka_topic
):
    post_entries(api, ledger, 12)
    configured = kafka_settings(settings, kafka_broker, kafka_topic)
    relay_to_kafka(engine, configured)
    poison = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    poison.produce(kafka_topic, key=b"not-a-ledger", value=b"{not json")
    assert poison.flush(10) == 0
    in_topic = read_topic(kafka_broker.bootstrap, kafka_topic)
    distinct = len({r.value for r in in_topic})
    name = f"mirror-{uuid.uuid4().hex[:8]}"
    source = {"bootstrap": kafka_broker.bootstrap, "topic": kafka_topic}

    first = consume_kafka(engine, **source, group_id=name, max_messages=10_000, timeout_s=60)
    assert (first["received"], first["applied"], first["duplicates"], first["invalid"]) == (
        len(in_topic),
        distinct - 1,
        0,
        1,
    ), first
    assert str(ledger.ledger_id) in first["ledger_ids"]

    # The same consumer again from another group: Kafka redelivers everything, dedupe skips it.
    redelivered = consume_kafka(
        engine, **source, group_id=f"{name}-replay", consumer_name=name, max_messages=10_000,
        timeout_s=60,
    )  # fmt: skip
    assert (redelivered["received"], redelivered["applied"], redelivered["duplicates"]) == (
        len(in_topic),
        0,
        distinct - 1,
    ), redelivered

    # Offsets were committed after the database commits: the group resumes at the end.
    resumed = consume_kafka(engine, **source, group_id=name, max_messages=10_000, timeout_s=60)
    assert resumed["received"] == 0, resumed

    with engine.connect() as conn:
        assert mirror_drift(conn, ledger.ledger_id, name) == []
        assert str(ledger.ledger_id) in mirrored_ledgers(conn, name)
    accounts = api.get("/v1/accounts", key=ledger.read_key).get_json()["data"]
    assert {a["balance"] for a in accounts} != {0}, "the workload moved money"

    # A mirror that disagrees with the ledger is reported, account by account.
    cash = next(a for a in accounts if a["code"] == "cash")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE consumer.balances SET balance = balance + 7 "
                "WHERE consumer = :name AND account_id = CAST(:account AS uuid)"
            ),
            {"name": name, "account": cash["id"]},
        )
    with engine.connect() as conn:
        assert mirror_drift(conn, ledger.ledger_id, name) == [
            {
                "account_id": cash["id"],
                "ledger_balance": cash["balance"],
                "mirrored_balance": cash["balance"] + 7,
            }
        ]


def test_record_event_is_true_once_per_consumer_and_only_when_committed(engine):
    event_id = uuid.uuid4()
    with engine.begin() as conn:
        ensure_consumer_schema(conn)
    with engine.connect() as conn, conn.begin() as transaction:
        assert record_event(conn, consumer="a", event_id=event_id) is True
        transaction.rollback()  # the side effect failed: the event is not processed
    with engine.begin() as conn:
        assert record_event(conn, consumer="a", event_id=event_id) is True
        assert record_event(conn, consumer="a", event_id=event_id) is False
        assert record_event(conn, consumer="b", event_id=str(event_id)) is True
    with engine.begin() as conn:
        assert record_event(conn, consumer="a", event_id=event_id) is False


def _events(count: int, *, big_at: int | None = None) -> list[OutboxEvent]:
    ledger_id = str(uuid.uuid4())
    events = []
    for i in range(count):
        event_id = str(uuid.uuid4())
        data = {"n": i, "pad": "x" * (2_000_000 if i == big_at else 0)}
        envelope = {"event_id": event_id, "event_type": "relay.test", "ledger_id": ledger_id,
                    "ledger_seq": i + 1, "occurred_at": "2026-01-01T00:00:00.000000Z",
                    "data": data}  # fmt: skip
        events.append(OutboxEvent.from_envelope(i + 1, envelope))
    return events


def test_every_message_is_confirmed_or_the_batch_fails(kafka_broker, kafka_topic):
    transport = KafkaTransport(bootstrap=kafka_broker.bootstrap, topic=kafka_topic)
    try:
        transport.publish(_events(5))
        # The second message is refused before it is queued; the third is never sent.
        with pytest.raises(PublishError, match=r"^2 of 3 Kafka messages .* not confirmed"):
            transport.publish(_events(3, big_at=1))
        transport.publish(_events(2))  # the producer is still usable
    finally:
        transport.close()
    records = read_topic(kafka_broker.bootstrap, kafka_topic)
    counts = Counter(r.envelope["data"]["n"] for r in records)
    assert sum(counts.values()) == 8 and counts[0] == 3, counts


def test_unreachable_broker_fails_the_batch_and_leaves_rows_unpublished(
    engine, ledger, empty_outbox
):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "SELECT arus_enqueue_event(CAST(:ledger AS uuid), 'relay.test', g, "
                "clock_timestamp(), json_build_object('n', g)) FROM generate_series(1, 3) g"
            ),
            {"ledger": str(ledger.ledger_id)},
        )
    nobody = KafkaTransport(
        bootstrap=f"127.0.0.1:{free_port()}", topic="arus.ledger.events", delivery_timeout_s=1.0
    )
    try:
        outcome = drain(engine, nobody, batch_size=10, time_budget_s=60)
    finally:
        nobody.close()
    assert outcome.error is not None
    assert re.search(r"kafka publish failed: 3 of 3 Kafka messages", outcome.error), outcome.error
    assert outcome.published == 0
    assert pending_rows(engine, ledger.ledger_id) == 3
    drain(engine, SinkTransport(), batch_size=10, time_budget_s=60)  # leave the outbox empty


def test_kafka_transport_needs_a_bootstrap(settings):
    with pytest.raises(ConfigError, match="ARUS_KAFKA_BOOTSTRAP"):
        make_transport(dataclasses.replace(settings, outbox_transport="kafka"))
    transport = make_transport(
        dataclasses.replace(settings, outbox_transport="kafka", kafka_bootstrap="127.0.0.1:1")
    )
    assert isinstance(transport, KafkaTransport) and transport.topic == "arus.ledger.events"
    transport.close()


def test_envelope_payload_is_canonical_json():
    (event,) = _events(1)
    assert json.loads(event.payload()) == event.envelope
