"""Consumer-side dedupe and the reference consumer (`arus consume`), SPEC §4.

The relay delivers at least once, so a consumer sees some events twice. It dedupes by
`event_id`: `record_event` inserts the id into the consumer's own `processed_events` table in
the same transaction as the side effect, and the side effect runs only when the insert was new.
Either both commit or neither does, so each event takes effect exactly once per consumer.

The reference consumer mirrors per-account balances from the event stream (`mirror_event`) and
compares the mirror with the ledger (`drift_against_ledger`). Its tables belong to the consumer,
not to the ledger: they live in the schema `consumer` (created by `ensure_consumer_schema`, not
by the ledger's migrations) and are keyed by consumer name, so several consumers can share one
database without seeing each other's progress.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from arus.config import ConfigError, Settings
from arus.schema import accounts as ledger_accounts
from arus.schema import balances as ledger_balances

log = logging.getLogger("arus.consumer")

SCHEMA = "consumer"
DEBIT_NORMAL_TYPES = frozenset({"asset", "expense"})
POLL_BATCH = 500  # messages per consume() call
POLL_TIMEOUT_S = 0.5

CONSUMER_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};

-- One row per (consumer, event) ever applied: the dedupe record, written in the same
-- transaction as the event's side effect.
CREATE TABLE IF NOT EXISTS {SCHEMA}.processed_events (
    consumer     text NOT NULL CHECK (length(consumer) BETWEEN 1 AND 200),
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, event_id)
);

-- What the reference consumer learned from account.created events: each account's normal side.
CREATE TABLE IF NOT EXISTS {SCHEMA}.accounts (
    consumer    text NOT NULL,
    account_id  uuid NOT NULL,
    ledger_id   uuid NOT NULL,
    normal_side text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    currency    text NOT NULL,
    PRIMARY KEY (consumer, account_id)
);

-- The mirrored balance, signed in the account's normal direction like the ledger's. numeric,
-- not bigint: events may arrive in any order, so a partial sum may leave the int64 range.
CREATE TABLE IF NOT EXISTS {SCHEMA}.balances (
    consumer    text NOT NULL,
    account_id  uuid NOT NULL,
    ledger_id   uuid NOT NULL,
    currency    text NOT NULL,
    balance     numeric NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, account_id)
);
CREATE INDEX IF NOT EXISTS balances_consumer_ledger_idx
    ON {SCHEMA}.balances (consumer, ledger_id);
"""

_metadata = sa.MetaData(schema=SCHEMA)

processed_events = sa.Table(
    "processed_events",
    _metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
)

mirror_accounts = sa.Table(
    "accounts",
    _metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("normal_side", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
)

mirror_balances = sa.Table(
    "balances",
    _metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance", sa.Numeric, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)


class InvalidEvent(ValueError):
    """A message that is not a SPEC §4 envelope the reference consumer can apply."""


def ensure_consumer_schema(conn: Connection) -> None:
    """Create the consumer's own tables if they are missing (idempotent, safe to race)."""
    # CREATE ... IF NOT EXISTS can still collide when two processes run it at once.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('arus.consumer.schema'))"))
    conn.exec_driver_sql(CONSUMER_DDL)


def record_event(conn: Connection, *, consumer: str, event_id: uuid.UUID | str) -> bool:
    """Record that `consumer` processed `event_id`; True when this is the first time.

    Call it inside the transaction that performs the side effect and skip the side effect when
    it returns False. A concurrent transaction recording the same event waits for this one:
    if this one commits, it gets False; if this one rolls back, it gets True.
    """
    inserted = conn.execute(
        pg_insert(processed_events)
        .values(consumer=consumer, event_id=_as_uuid(event_id, "event_id"))
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(processed_events.c.event_id)
    ).first()
    return inserted is not None


@dataclass(frozen=True)
class _Envelope:
    event_id: uuid.UUID
    event_type: str
    ledger_id: uuid.UUID
    data: dict[str, Any]


def _parse(envelope: dict[str, Any]) -> _Envelope:
    if not isinstance(envelope, dict):
        raise InvalidEvent("an event envelope is a JSON object")
    data = envelope.get("data")
    event_type = envelope.get("event_type")
    if not isinstance(data, dict) or not isinstance(event_type, str):
        raise InvalidEvent("an event envelope has an event_type and an object in data")
    return _Envelope(
        event_id=_as_uuid(envelope.get("event_id"), "event_id"),
        event_type=event_type,
        ledger_id=_as_uuid(envelope.get("ledger_id"), "ledger_id"),
        data=data,
    )


def _as_uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidEvent(f"{field} must be a UUID, not {value!r}") from None


def mirror_event(conn: Connection, envelope: dict[str, Any], consumer_name: str) -> bool:
    """Apply one event to the mirrored balances, once; returns False for a duplicate.

    `entry.committed`: every posting moves its account's balance by its amount, positive on
    the account's normal side. `account.created`: remembers the account's normal side. Other
    event types are recorded as processed and otherwise ignored.
    """
    event = _parse(envelope)
    if not record_event(conn, consumer=consumer_name, event_id=event.event_id):
        return False
    if event.event_type == "account.created":
        _learn_account(conn, consumer_name, event.ledger_id, event.data)
    elif event.event_type == "entry.committed":
        _apply_entry(conn, consumer_name, event.ledger_id, event.data)
    return True


def _normal_side(account_type: object) -> str:
    return "debit" if account_type in DEBIT_NORMAL_TYPES else "credit"


def _learn_account(
    conn: Connection, consumer: str, ledger_id: uuid.UUID, account: dict[str, Any]
) -> None:
    if not isinstance(account.get("type"), str) or not isinstance(account.get("currency"), str):
        raise InvalidEvent("account.created data has the account's type and currency")
    account_id = _as_uuid(account.get("id"), "data.id")
    conn.execute(
        pg_insert(mirror_accounts)
        .values(
            consumer=consumer,
            account_id=account_id,
            ledger_id=ledger_id,
            normal_side=_normal_side(account["type"]),
            currency=account["currency"],
        )
        .on_conflict_do_nothing(index_elements=["consumer", "account_id"])
    )


def _known_accounts(
    conn: Connection, consumer: str, ledger_id: uuid.UUID, account_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """(normal side, currency) per account: from account.created events seen, else the ledger."""
    known = {
        row.account_id: (row.normal_side, row.currency)
        for row in conn.execute(
            sa.select(
                mirror_accounts.c.account_id,
                mirror_accounts.c.normal_side,
                mirror_accounts.c.currency,
            ).where(
                mirror_accounts.c.consumer == consumer,
                mirror_accounts.c.account_id.in_(account_ids),
            )
        )
    }
    missing = [account_id for account_id in account_ids if account_id not in known]
    if missing:
        # The account.created event has not arrived (or was published before this consumer
        # started): the reference consumer shares the ledger's database, so ask the ledger.
        for row in conn.execute(
            sa.select(ledger_accounts.c.id, ledger_accounts.c.type, ledger_accounts.c.currency)
            .where(ledger_accounts.c.ledger_id == ledger_id, ledger_accounts.c.id.in_(missing))
            .order_by(ledger_accounts.c.id)
        ):
            learned = {"id": row.id, "type": row.type, "currency": row.currency}
            _learn_account(conn, consumer, ledger_id, learned)
            known[row.id] = (_normal_side(row.type), row.currency)
    unknown = [str(account_id) for account_id in account_ids if account_id not in known]
    if unknown:
        raise InvalidEvent(f"postings name accounts unknown to ledger {ledger_id}: {unknown}")
    return known


def _posting_line(posting: object) -> tuple[uuid.UUID, str, int]:
    """(account_id, direction, amount_minor) of one posting of an entry's JSON."""
    if not isinstance(posting, dict):
        raise InvalidEvent("a posting is a JSON object")
    amount, direction = posting.get("amount"), posting.get("direction")
    if type(amount) is not int or amount < 1 or direction not in ("debit", "credit"):
        raise InvalidEvent("a posting has a positive integer amount and a direction")
    return _as_uuid(posting.get("account_id"), "account_id"), str(direction), amount


def _apply_entry(
    conn: Connection, consumer: str, ledger_id: uuid.UUID, entry: dict[str, Any]
) -> None:
    postings = entry.get("postings")
    if not isinstance(postings, list) or not postings:
        raise InvalidEvent("entry.committed data has a list of postings")
    lines = [_posting_line(posting) for posting in postings]
    deltas: dict[uuid.UUID, int] = {}
    account_ids = sorted({account_id for account_id, _, _ in lines})
    known = _known_accounts(conn, consumer, ledger_id, account_ids)
    for account_id, direction, amount in lines:
        normal_side = known[account_id][0]
        deltas[account_id] = deltas.get(account_id, 0) + (
            amount if direction == normal_side else -amount
        )
    # Ascending account id, like the ledger's own writers: concurrent consumers never deadlock.
    upsert = pg_insert(mirror_balances)
    upsert = upsert.on_conflict_do_update(
        index_elements=["consumer", "account_id"],
        set_={
            "balance": mirror_balances.c.balance + upsert.excluded.balance,
            "updated_at": sa.func.clock_timestamp(),
        },
    )
    for account_id in account_ids:
        conn.execute(
            upsert,
            {
                "consumer": consumer,
                "account_id": account_id,
                "ledger_id": ledger_id,
                "currency": known[account_id][1],
                "balance": deltas[account_id],
            },
        )


def drift_against_ledger(
    conn: Connection, ledger_id: uuid.UUID | str, consumer_name: str
) -> list[dict[str, Any]]:
    """Accounts of `ledger_id` whose mirrored balance differs from the ledger's balance.

    An account the consumer never heard of counts as a mirrored balance of 0. Empty when the
    consumer has applied every event of the ledger that is committed.
    """
    ledger = _as_uuid(ledger_id, "ledger_id")
    mirror = (
        sa.select(mirror_balances.c.account_id, mirror_balances.c.balance)
        .where(mirror_balances.c.consumer == consumer_name, mirror_balances.c.ledger_id == ledger)
        .subquery("mirror")
    )
    book = (
        sa.select(ledger_balances.c.account_id, ledger_balances.c.balance)
        .where(ledger_balances.c.ledger_id == ledger)
        .subquery("book")
    )
    ledger_balance = sa.func.coalesce(book.c.balance, 0)
    mirrored_balance = sa.func.coalesce(mirror.c.balance, 0)
    rows = conn.execute(
        sa.select(
            sa.func.coalesce(book.c.account_id, mirror.c.account_id).label("account_id"),
            ledger_balance.label("ledger_balance"),
            mirrored_balance.label("mirrored_balance"),
        )
        .select_from(book.join(mirror, book.c.account_id == mirror.c.account_id, full=True))
        .where(ledger_balance != mirrored_balance)
        .order_by("account_id")
    )
    return [
        {
            "account_id": str(row.account_id),
            "ledger_balance": int(row.ledger_balance),
            "mirrored_balance": int(row.mirrored_balance),
        }
        for row in rows
    ]


def mirrored_ledgers(conn: Connection, consumer_name: str) -> list[str]:
    """The ledgers `consumer_name` holds mirrored balances for (to report drift on each)."""
    rows = conn.execute(
        sa.select(mirror_balances.c.ledger_id)
        .where(mirror_balances.c.consumer == consumer_name)
        .distinct()
        .order_by(mirror_balances.c.ledger_id)
    )
    return [str(row.ledger_id) for row in rows]


def consume_kafka(
    settings: Settings,
    *,
    group_id: str,
    max_messages: int,
    timeout_s: float,
    consumer_name: str | None = None,
) -> dict[str, Any]:
    """The reference consumer over Kafka: mirror balances from `settings.kafka_topic`.

    Polls with consumer group `group_id` from the group's committed offsets (the earliest
    offset the first time). Each message is applied with `mirror_event` in its own database
    transaction, deduped under `consumer_name` (default: the group id); offsets are committed
    to Kafka only after those transactions commit, so a crash in between redelivers messages
    that dedupe then skips. Stops after `max_messages`, when every assigned partition is read
    to its end, or after `timeout_s`, whichever comes first.

    Returns {received, applied, duplicates, invalid, ledger_ids}.
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

    from arus.db import get_engine

    if not settings.kafka_bootstrap:
        raise ConfigError("consuming from Kafka needs ARUS_KAFKA_BOOTSTRAP")
    assert group_id and 1 <= max_messages <= 10_000_000 and 0 < timeout_s <= 3600
    name = consumer_name or group_id
    engine = get_engine(settings)
    with engine.begin() as conn:
        ensure_consumer_schema(conn)

    assigned: set[tuple[str, int]] = set()
    at_end: set[tuple[str, int]] = set()

    def on_assign(_consumer: Any, partitions: list[TopicPartition]) -> None:
        assigned.update((p.topic, p.partition) for p in partitions)

    def on_revoke(_consumer: Any, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            assigned.discard((p.topic, p.partition))
            at_end.discard((p.topic, p.partition))

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 500,
        }
    )
    counts = {"received": 0, "applied": 0, "duplicates": 0, "invalid": 0}
    ledger_ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        consumer.subscribe([settings.kafka_topic], on_assign=on_assign, on_revoke=on_revoke)
        while counts["received"] < max_messages and time.monotonic() < deadline:
            if assigned and assigned <= at_end:
                break  # read everything there is
            batch: list[Message] = consumer.consume(
                min(POLL_BATCH, max_messages - counts["received"]), POLL_TIMEOUT_S
            )
            received_any = False
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add((message.topic() or "", message.partition() or 0))
                        continue
                    raise KafkaException(error)
                at_end.discard((message.topic() or "", message.partition() or 0))
                counts["received"] += 1
                received_any = True
                outcome = _apply_message(engine, message.value(), name)
                counts[outcome] += 1
                if outcome != "invalid" and message.key():
                    ledger_ids.add(_ledger_of(message.key()))
            if received_any:
                # After the database commits: at worst a redelivery, which dedupe absorbs.
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    result: dict[str, Any] = dict(counts)
    result["ledger_ids"] = sorted(ledger_ids)
    log.info("consumed", extra={"consume": result})
    return result


def _ledger_of(key: bytes | None) -> str:
    return key.decode() if key else ""


def _apply_message(engine: sa.Engine, value: bytes | None, consumer_name: str) -> str:
    try:
        envelope = json.loads(value or b"")
        with engine.begin() as conn:
            return "applied" if mirror_event(conn, envelope, consumer_name) else "duplicates"
    except (json.JSONDecodeError, UnicodeDecodeError, InvalidEvent) as exc:
        # A poison message must not stop the stream; it is counted and logged, not applied.
        log.error("skipping a message that is not an applicable event: %s", exc)
        return "invalid"
