"""The relay (SPEC §4): batches in id order, a time budget, errors reported, at-least-once.

Unit behaviour runs drain() against the real outbox with recording transports and an injected
clock. The chaos test breaks publishing in two ways over randomized rounds (a broker that fails
part-way through a batch, and a relay process SIGKILLed after publishing part of a batch but
before its commit) and proves nothing is lost and consumer-side dedupe applies each event
exactly once. The concurrency tests run two relays over 10,000 rows and count duplicates.
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from arus.ledger.schema import outbox_events
from arus.outbox.relay import drain, run_once
from arus.outbox.transports import OutboxEvent, PublishError
from arus.outbox.transports.kafka import KafkaTransport
from arus_client.reference_consumer import ensure_consumer_schema, mirror_event

from tests.support import brokers
from tests.support.brokers import KafkaBroker, mirror_drift, pending_rows, read_topic

CHILD = Path(brokers.__file__).resolve().parent / "relay_child.py"
CHAOS_SEED = 20_261_125
CHAOS_ROUNDS = 24
CONCURRENT_ROWS = 10_000


# --- helpers ----------------------------------------------------------------------------------


def insert_outbox_rows(
    engine: sa.Engine, ledger_id: uuid.UUID, count: int, *, age_s: float = 0.0
) -> list[int]:
    """`count` synthetic outbox rows for one ledger (relay tests only: no journal behind them)."""
    with engine.begin() as conn:
        ids = conn.execute(
            sa.text(
                """
                INSERT INTO outbox_events
                    (event_id, ledger_id, event_type, ledger_seq, occurred_at, envelope)
                SELECT e.event_id, CAST(:ledger AS uuid), 'relay.test', e.n, e.at,
                       jsonb_build_object(
                           'event_id', e.event_id, 'event_type', 'relay.test',
                           'ledger_id', CAST(:ledger AS uuid), 'ledger_seq', e.n,
                           'occurred_at', arus_timestamp(e.at),
                           'data', jsonb_build_object('n', e.n))
                FROM (SELECT gen_random_uuid() AS event_id, g AS n,
                             clock_timestamp() - make_interval(secs => :age_s) AS at
                      FROM generate_series(1, :count) AS g) AS e
                ORDER BY e.n
                RETURNING id
                """
            ),
            {"ledger": str(ledger_id), "count": count, "age_s": age_s},
        ).scalars()
        return sorted(ids)


def published_ids(engine: sa.Engine, ledger_id: uuid.UUID) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(outbox_events.c.id)
                .where(
                    outbox_events.c.ledger_id == ledger_id,
                    outbox_events.c.published_at.is_not(None),
                )
                .order_by(outbox_events.c.id)
            ).scalars()
        )


class RecordingTransport:
    """Keeps every batch; optionally fails on one call, or runs a hook after each batch."""

    name = "recording"

    def __init__(
        self,
        *,
        fail_on_call: int | None = None,
        error: Exception | None = None,
        after_publish: Callable[[], None] | None = None,
    ) -> None:
        self.batches: list[list[OutboxEvent]] = []
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.error = error or PublishError("injected: broker refused the batch")
        self.after_publish = after_publish

    def publish(self, events: list[OutboxEvent]) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.error
        self.batches.append(list(events))
        if self.after_publish is not None:
            self.after_publish()

    def close(self) -> None:
        pass

    @property
    def ids(self) -> list[int]:
        return [event.outbox_id for batch in self.batches for event in batch]


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


# --- unit behaviour ---------------------------------------------------------------------------


def test_batches_honour_batch_size_and_id_order(engine, ledger, empty_outbox):
    ids = insert_outbox_rows(engine, ledger.ledger_id, 23)
    transport = RecordingTransport()

    outcome = drain(engine, transport, batch_size=5, time_budget_s=60)

    assert [len(batch) for batch in transport.batches] == [5, 5, 5, 5, 3]
    assert transport.ids == ids, "the relay publishes in outbox id order, each row once"
    assert (outcome.published, outcome.batches, outcome.error) == (23, 5, None)
    assert published_ids(engine, ledger.ledger_id) == ids
    assert outcome.oldest_unpublished_age_s is None


def test_empty_outbox_run_publishes_nothing(engine, empty_outbox):
    transport = RecordingTransport()
    outcome = drain(engine, transport, batch_size=10, time_budget_s=60)
    assert (outcome.published, outcome.batches, outcome.error) == (0, 0, None)
    assert transport.calls == 0
    assert outcome.oldest_unpublished_age_s is None


def test_time_budget_stops_starting_batches(engine, ledger, empty_outbox):
    """The budget is checked before each batch: once spent, no new batch starts."""
    ids = insert_outbox_rows(engine, ledger.ledger_id, 20)
    clock = FakeClock()
    transport = RecordingTransport(after_publish=lambda: clock.advance(1.0))

    outcome = drain(engine, transport, batch_size=2, time_budget_s=3.5, clock=clock)

    # Batches start at t=0, 1, 2, 3; at t=4 the 3.5 s budget is spent.
    assert (outcome.batches, outcome.published, outcome.error) == (4, 8, None)
    assert outcome.duration_s == pytest.approx(4.0)
    assert published_ids(engine, ledger.ledger_id) == ids[:8]
    assert pending_rows(engine, ledger.ledger_id) == 12
    assert outcome.oldest_unpublished_age_s is not None

    rest = drain(engine, RecordingTransport(), batch_size=100, time_budget_s=60, clock=clock)
    assert (rest.published, rest.batches) == (12, 1)
    assert published_ids(engine, ledger.ledger_id) == ids


def test_oldest_unpublished_age_is_reported(engine, ledger, empty_outbox):
    insert_outbox_rows(engine, ledger.ledger_id, 3, age_s=300)
    failing = RecordingTransport(fail_on_call=1)

    outcome = drain(engine, failing, batch_size=10, time_budget_s=60)

    age = outcome.oldest_unpublished_age_s
    assert age is not None and 300 <= age < 86_400, f"age {age} s of rows written 300 s ago"
    assert outcome.to_json()["oldest_unpublished_age_s"] == age
    drained = drain(engine, RecordingTransport(), batch_size=10, time_budget_s=60)
    assert drained.published == 3 and drained.oldest_unpublished_age_s is None


def test_publish_error_is_reported_and_its_batch_stays_unpublished(engine, ledger, empty_outbox):
    ids = insert_outbox_rows(engine, ledger.ledger_id, 10)
    failing = RecordingTransport(fail_on_call=2)

    outcome = drain(engine, failing, batch_size=4, time_budget_s=60)

    assert outcome.error is not None
    assert "recording publish failed" in outcome.error and "injected" in outcome.error
    assert (outcome.published, outcome.batches) == (4, 1), "the first batch was committed"
    assert published_ids(engine, ledger.ledger_id) == ids[:4]
    assert outcome.to_json()["error"] == outcome.error

    retry = RecordingTransport()
    again = drain(engine, retry, batch_size=4, time_budget_s=60)
    assert (again.published, again.error) == (6, None)
    assert retry.ids == ids[4:], "the next run republishes the failed batch first"
    assert published_ids(engine, ledger.ledger_id) == ids


def test_unexpected_transport_exception_propagates_and_marks_nothing(engine, ledger, empty_outbox):
    insert_outbox_rows(engine, ledger.ledger_id, 3)
    broken = RecordingTransport(fail_on_call=1, error=RuntimeError("a bug in the transport"))
    with pytest.raises(RuntimeError, match="a bug in the transport"):
        drain(engine, broken, batch_size=10, time_budget_s=60)
    assert pending_rows(engine, ledger.ledger_id) == 3


def test_run_once_reports_the_error_then_publishes(settings, engine, ledger, empty_outbox):
    ids = insert_outbox_rows(engine, ledger.ledger_id, 5)
    failed = run_once(settings, transport=RecordingTransport(fail_on_call=1))
    assert failed.error is not None and failed.published == 0
    assert pending_rows(engine, ledger.ledger_id) == 5

    transport = RecordingTransport()
    outcome = run_once(settings, transport=transport)
    assert (outcome.published, outcome.error) == (5, None)
    assert transport.ids == ids


# --- chaos ------------------------------------------------------------------------------------


class FailsPartWay:
    """Forwards whole batches to Kafka until `fail_at_batch`, whose first `forward` events it
    forwards (Kafka confirms them) before the 'broker' fails."""

    name = "kafka"

    def __init__(self, inner: KafkaTransport, *, fail_at_batch: int, forward: int) -> None:
        self.inner, self.fail_at_batch, self.forward = inner, fail_at_batch, forward
        self.batches = 0

    def publish(self, events: list[OutboxEvent]) -> None:
        self.batches += 1
        assert self.batches <= self.fail_at_batch, "the relay stops at the first failed batch"
        if self.batches < self.fail_at_batch:
            self.inner.publish(events)
            return
        self.inner.publish(events[: self.forward])
        raise PublishError(f"injected: broker failed after {self.forward} of {len(events)}")

    def close(self) -> None:
        pass


class ChildRelay:
    """tests/support/relay_child.py in its own process; stdout lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def expect(self, prefix: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"relay child printed no {prefix} in {timeout_s}s") from None
            if line is None:
                self.process.wait(timeout=10)
                raise AssertionError(
                    f"relay child exited ({self.process.returncode}) before {prefix}: "
                    + "".join(self.stderr)[-3000:]
                )
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    @property
    def application_name(self) -> str:
        return f"arus-relay-child-{self.process.pid}"


def wait_until_session_gone(engine: sa.Engine, application_name: str) -> None:
    """PostgreSQL rolls back a killed client's transaction when it sees the socket close."""
    deadline = time.monotonic() + 30
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    while True:
        with engine.connect() as conn:
            if conn.execute(query, {"name": application_name}).scalar_one() == 0:
                return
        assert time.monotonic() < deadline, f"{application_name} still has a session after 30s"
        time.sleep(0.02)


@pytest.mark.slow
def test_relay_chaos_loses_nothing_and_dedupe_applies_each_event_once(
    api, ledger, engine, kafka_broker: KafkaBroker, kafka_topic: str, empty_outbox
):
    rng = random.Random(CHAOS_SEED)
    kafka = KafkaTransport(bootstrap=kafka_broker.bootstrap, topic=kafka_topic)
    codes = ["cash", "bank", "sales", "fees"]
    for code, type_ in zip(codes, ["asset", "asset", "revenue", "expense"], strict=True):
        api.account(ledger, code, type_, allow_negative=True)
    scenarios = ["fails_part_way"] * (CHAOS_ROUNDS // 2) + ["sigkill"] * (CHAOS_ROUNDS // 2)
    rng.shuffle(scenarios)
    forwarded_before_failure = 0
    started = time.monotonic()
    try:
        for round_no, scenario in enumerate(scenarios, start=1):
            if rng.random() < 0.3:
                codes.append(f"acct{round_no}")
                api.account(ledger, codes[-1], rng.choice(["asset", "liability"]), "USD", True)
            for _ in range(rng.randint(2, 8)):
                debit, credit = rng.sample(codes, 2)
                response = api.transfer(ledger, debit, credit, rng.randint(1, 10_000))
                assert response.status_code == 201, response.get_json()

            pending = pending_rows(engine)
            assert pending == pending_rows(engine, ledger.ledger_id), "only our rows are pending"
            batch_size = rng.randint(1, 4)
            fail_at = rng.randint(1, math.ceil(pending / batch_size))
            committed_before = (fail_at - 1) * batch_size
            failing_batch = min(batch_size, pending - committed_before)
            forward = rng.randint(1, failing_batch)

            if scenario == "fails_part_way":
                transport = FailsPartWay(kafka, fail_at_batch=fail_at, forward=forward)
                outcome = drain(engine, transport, batch_size=batch_size, time_budget_s=60)
                assert outcome.error is not None and "injected" in outcome.error
                assert outcome.published == committed_before
            else:
                child = ChildRelay(
                    "stall", "--bootstrap", kafka_broker.bootstrap, "--topic", kafka_topic,
                    "--batch-size", str(batch_size), "--stall-at-batch", str(fail_at),
                    "--publish-prefix", str(forward),
                )  # fmt: skip
                try:
                    line = child.expect("PUBLISHED")
                    assert int(line.split()[1]) == forward
                finally:
                    child.kill()
                assert child.process.returncode == -signal.SIGKILL
                wait_until_session_gone(engine, child.application_name)
            forwarded_before_failure += forward
            left = pending - committed_before
            assert pending_rows(engine, ledger.ledger_id) == left, (
                f"round {round_no} ({scenario}): the interrupted batch must stay unpublished"
            )

            # The next run republishes the interrupted batch and everything after it.
            outcome = drain(engine, kafka, batch_size=rng.randint(1, 50), time_budget_s=60)
            assert (outcome.error, outcome.published) == (None, left), f"round {round_no}"
            assert pending_rows(engine, ledger.ledger_id) == 0
    finally:
        kafka.close()

    records = [
        r for r in read_topic(kafka_broker.bootstrap, kafka_topic)
        if r.envelope["ledger_id"] == str(ledger.ledger_id)
    ]  # fmt: skip
    with engine.connect() as conn:
        outbox = set(
            conn.execute(
                sa.select(outbox_events.c.event_id).where(
                    outbox_events.c.ledger_id == ledger.ledger_id
                )
            ).scalars()
        )
    delivered_ids = [uuid.UUID(r.headers["event_id"].decode()) for r in records]
    delivered = Counter(delivered_ids)
    duplicates_delivered = len(delivered_ids) - len(delivered)
    lost = outbox - set(delivered)

    consumer = f"chaos-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        ensure_consumer_schema(conn)
    applied: Counter[uuid.UUID] = Counter()
    for record in records:
        with engine.begin() as conn:
            if mirror_event(conn, record.envelope, consumer):
                applied[uuid.UUID(record.envelope["event_id"])] += 1
    after_dedupe_duplicates = sum(applied.values()) - len(applied)
    with engine.connect() as conn:
        drift = mirror_drift(conn, ledger.ledger_id, consumer)

    print(
        f"\nCHAOS rounds={len(scenarios)} seed={CHAOS_SEED} "
        f"fails_part_way={scenarios.count('fails_part_way')} sigkill={scenarios.count('sigkill')} "
        f"events={len(outbox)} delivered={len(delivered_ids)} "
        f"duplicates_delivered={duplicates_delivered} "
        f"after_dedupe_duplicates={after_dedupe_duplicates} lost={len(lost)} "
        f"mirror_drift={len(drift)} seconds={time.monotonic() - started:.1f}"
    )
    assert len(scenarios) >= 20
    assert not lost, f"{len(lost)} of {len(outbox)} events never reached Kafka"
    assert duplicates_delivered >= forwarded_before_failure >= CHAOS_ROUNDS, (
        f"every interrupted batch's confirmed messages are delivered again: "
        f"{duplicates_delivered} duplicates, {forwarded_before_failure} forwarded before failures"
    )
    assert after_dedupe_duplicates == 0
    assert set(applied) == outbox and set(applied.values()) == {1}
    assert drift == [], "the mirrored balances equal the ledger's"


# --- two relays, 10,000 rows ------------------------------------------------------------------


class CountingTransport:
    """Counts every delivered event id in a Counter shared by several relays."""

    name = "counting"

    def __init__(self, delivered: Counter[str], lock: threading.Lock) -> None:
        self.delivered, self.lock = delivered, lock
        self.published = 0

    def publish(self, events: list[OutboxEvent]) -> None:
        with self.lock:
            self.delivered.update(event.event_id for event in events)
        self.published += len(events)

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_two_relays_drain_10000_rows_concurrently_without_duplicates(engine, ledger, empty_outbox):
    insert_outbox_rows(engine, ledger.ledger_id, CONCURRENT_ROWS)
    delivered: Counter[str] = Counter()
    lock = threading.Lock()
    transports = [CountingTransport(delivered, lock) for _ in range(2)]
    outcomes: list[Any] = [None, None]
    start = threading.Barrier(2)

    def relay(index: int) -> None:
        start.wait()
        outcomes[index] = drain(engine, transports[index], batch_size=100, time_budget_s=300)

    threads = [threading.Thread(target=relay, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(outcome is not None and outcome.error is None for outcome in outcomes)

    duplicates = sum(delivered.values()) - len(delivered)
    print(
        f"\nCONCURRENCY transport=counting relays=2 rows={CONCURRENT_ROWS} "
        f"delivered={sum(delivered.values())} distinct={len(delivered)} duplicates={duplicates} "
        f"relay_a={outcomes[0].published}/{outcomes[0].batches} batches "
        f"relay_b={outcomes[1].published}/{outcomes[1].batches} batches "
        f"unpublished={pending_rows(engine, ledger.ledger_id)}"
    )
    assert len(delivered) == CONCURRENT_ROWS
    assert duplicates == 0, f"{duplicates} rows published twice despite SKIP LOCKED"
    assert outcomes[0].published + outcomes[1].published == CONCURRENT_ROWS
    assert min(outcomes[0].published, outcomes[1].published) > 0, "both relays took batches"
    assert pending_rows(engine, ledger.ledger_id) == 0


@pytest.mark.slow
def test_two_relay_processes_drain_10000_rows_to_kafka(
    engine, ledger, kafka_broker: KafkaBroker, kafka_topic: str, empty_outbox
):
    insert_outbox_rows(engine, ledger.ledger_id, CONCURRENT_ROWS)
    args = ["--bootstrap", kafka_broker.bootstrap, "--topic", kafka_topic, "--batch-size", "500"]
    children = [ChildRelay("drain", *args, "--wait-go") for _ in range(2)]
    try:
        for child in children:
            child.expect("READY")
        for child in children:
            child.send("go")
        outcomes = [json.loads(child.expect("OUTCOME", 240).split(" ", 1)[1]) for child in children]
    finally:
        for child in children:
            child.kill()
    assert all(outcome["error"] is None for outcome in outcomes), outcomes

    records = [
        r for r in read_topic(kafka_broker.bootstrap, kafka_topic)
        if r.key == str(ledger.ledger_id).encode()
    ]  # fmt: skip
    delivered = Counter(r.headers["event_id"] for r in records)
    duplicates = len(records) - len(delivered)
    print(
        f"\nCONCURRENCY transport=kafka relays=2 (processes) rows={CONCURRENT_ROWS} "
        f"delivered={len(records)} distinct={len(delivered)} duplicates={duplicates} "
        f"relay_a={outcomes[0]['published']}/{outcomes[0]['batches']} batches "
        f"relay_b={outcomes[1]['published']}/{outcomes[1]['batches']} batches "
        f"unpublished={pending_rows(engine, ledger.ledger_id)}"
    )
    if len(delivered) != CONCURRENT_ROWS:
        # Which outbox rows are marked published but absent from the topic: one whole batch
        # (a contiguous id range) points at the broker, scattered rows at the relay.
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox_events.c.id, outbox_events.c.event_id).where(
                    outbox_events.c.ledger_id == ledger.ledger_id
                )
            ).all()
        missing = sorted(row.id for row in rows if str(row.event_id).encode() not in delivered)
        offsets = sorted(r.offset for r in records)
        pytest.fail(
            f"{len(missing)} published rows are not on the topic: outbox ids {missing[:3]}.."
            f"{missing[-3:]}; topic offsets {offsets[:1]}..{offsets[-1:]} ({len(offsets)})"
        )
    assert duplicates == 0, f"{duplicates} rows published twice despite SKIP LOCKED"
    assert outcomes[0]["published"] + outcomes[1]["published"] == CONCURRENT_ROWS
    assert min(outcomes[0]["published"], outcomes[1]["published"]) > 0, "both relays took batches"
    assert pending_rows(engine, ledger.ledger_id) == 0
