"""`arus consume`: the reference consumer over a real Kafka-protocol broker, from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import brokers
from tests.conftest import injected_drift
from tests.test_transport_kafka import kafka_settings, post_entries, relay_to_kafka

empty_outbox = brokers.empty_outbox
kafka_broker = brokers.kafka_broker
kafka_topic = brokers.kafka_topic


def consume(broker, topic: str, group: str) -> tuple[int, dict]:
    env = {
        **os.environ,
        "ARUS_OUTBOX_TRANSPORT": "kafka",
        "ARUS_KAFKA_BOOTSTRAP": broker.bootstrap,
        "ARUS_KAFKA_TOPIC": topic,
    }
    result = subprocess.run(
        [sys.executable, "-m", "arus.cli", "consume", "--group", group, "--timeout", "60"],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_consume_mirrors_every_event_and_reports_drift(
    api, ledger, engine, settings, empty_outbox, kafka_broker, kafka_topic
):
    posted = post_entries(api, ledger, 6)
    relay_to_kafka(engine, kafka_settings(settings, kafka_broker, kafka_topic))

    status, report = consume(kafka_broker, kafka_topic, "cli-consumer")
    assert status == 0, report
    assert report["applied"] == len(posted) + 3, report  # 6 entries + 3 account.created
    assert report["drift"] == {}

    cash = "(SELECT id FROM accounts WHERE ledger_id = :l AND code = 'cash')"
    with injected_drift(engine, cash, 7, {"l": ledger.ledger_id}):
        status, report = consume(kafka_broker, kafka_topic, "cli-consumer")
    assert status == 1, report
    assert list(report["drift"]) == [str(ledger.ledger_id)], report
