"""A relay in its own process, for the chaos and concurrency tests (run as a script).

    python tests/support/relay_child.py drain --bootstrap B --topic T --batch-size N
        One relay run with the Kafka transport against ARUS_DATABASE_URL; prints the outcome.
        With --wait-go it prints READY and waits for a line on stdin before draining.

    python tests/support/relay_child.py stall --bootstrap B --topic T --batch-size N \
            --stall-at-batch J --publish-prefix M
        Batches before J are published and committed normally. In batch J the transport
        publishes the first M events (confirmed by Kafka), prints `PUBLISHED <M> <ids>` and
        sleeps inside the still-open transaction, waiting for the parent's SIGKILL.

Its database sessions carry application_name `arus-relay-child-<pid>`, so the parent can wait
for PostgreSQL to notice the killed session and release its row locks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import sqlalchemy as sa
from arus.outbox.relay import drain
from arus.outbox.transports import OutboxEvent
from arus.outbox.transports.kafka import KafkaTransport
from arus.platform.config import load_settings
from arus.platform.db import get_engine

STALL_S = 60.0  # the parent kills us long before this; bounded in case it does not


class StallingTransport:
    name = "kafka"

    def __init__(self, inner: KafkaTransport, *, stall_at_batch: int, publish_prefix: int):
        self.inner = inner
        self.stall_at_batch = stall_at_batch
        self.publish_prefix = publish_prefix
        self.batches = 0

    def publish(self, events: list[OutboxEvent]) -> None:
        self.batches += 1
        if self.batches < self.stall_at_batch:
            self.inner.publish(events)
            return
        prefix = events[: self.publish_prefix]
        self.inner.publish(prefix)
        ids = ",".join(str(e.outbox_id) for e in events)
        print(f"PUBLISHED {len(prefix)} {ids}", flush=True)
        time.sleep(STALL_S)
        raise SystemExit(3)

    def close(self) -> None:
        self.inner.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("drain", "stall"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--stall-at-batch", type=int, default=1)
    parser.add_argument("--publish-prefix", type=int, default=1)
    parser.add_argument("--wait-go", action="store_true", help="drain after a line on stdin")
    args = parser.parse_args()

    engine = get_engine(load_settings().for_job("relay"))  # the relay's own login
    application_name = f"arus-relay-child-{os.getpid()}"

    @sa.event.listens_for(engine, "connect")
    def name_session(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET application_name = '{application_name}'")
        cursor.close()
        dbapi_connection.commit()

    kafka = KafkaTransport(bootstrap=args.bootstrap, topic=args.topic)
    transport: Any = kafka
    if args.mode == "stall":
        transport = StallingTransport(
            kafka, stall_at_batch=args.stall_at_batch, publish_prefix=args.publish_prefix
        )
    print("READY", flush=True)
    if args.wait_go:
        sys.stdin.readline()  # both relays start draining at the same moment
    try:
        outcome = drain(engine, transport, batch_size=args.batch_size, time_budget_s=300)
    finally:
        transport.close()
    print(f"OUTCOME {json.dumps(outcome.to_json())}", flush=True)
    return 0 if outcome.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
