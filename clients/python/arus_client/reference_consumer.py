"""The reference consumer (`arus-consume`, SPEC §4): balances mirrored from the event stream.

It reads only the event stream, its own tables and the API. It mirrors per-account balances from
Kafka (`mirror_event`, each event once: `arus_client.events`) into the schema `consumer` of its
own PostgreSQL database, keyed by consumer name, and compares the mirror with the ledger's
balances as the API reports them (`drift_against_api`). An entry naming an account whose
`account.created` event it never saw (published before it started) is learned from the API
when it holds a key for that ledger; otherwise the message is counted invalid, never guessed.

    arus-consume --bootstrap 127.0.0.1:9092 --database-url postgresql+pg8000://... \\
        --api-url http://127.0.0.1:8080 --key arus_<read key>

Prints {received, applied, duplicates, invalid, ledger_ids, drift} as JSON; exits 1 on drift.
Needs the `kafka` extra (confluent-kafka) to consume; mirroring and drift need SQLAlchemy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from arus_client.client import ArusApiError, ArusClient, NotFoundError
from arus_client.events import SCHEMA, ensure_schema, metadata, record_event

log = logging.getLogger("arus_client.reference_consumer")

DEBIT_NORMAL_TYPES = frozenset({"asset", "expense"})
POLL_BATCH = 500  # messages per consume() call
POLL_TIMEOUT_S = 0.5
DEFAULT_TOPIC = "arus.ledger.events"

MIRROR_DDL = f"""
-- What the reference consumer learned of each account: its normal side and currency.
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

mirror_accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("normal_side", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
)

mirror_balances = sa.Table(
    "balances",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance", sa.Numeric, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

# (ledger id, account id) -> (account type, currency), or None when it cannot say.
AccountLookup = Callable[[uuid.UUID, uuid.UUID], tuple[str, str] | None]


class InvalidEvent(ValueError):
    """A message that is not a SPEC §4 envelope the reference consumer can apply."""


def ensure_consumer_schema(conn: Connection) -> None:
    """The dedupe table and the mirror's tables, created if missing."""
    ensure_schema(conn, MIRROR_DDL)


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


def mirror_event(
    conn: Connection,
    envelope: dict[str, Any],
    consumer_name: str,
    *,
    lookup: AccountLookup | None = None,
) -> bool:
    """Apply one event to the mirrored balances, once; returns False for a duplicate.

    `entry.committed`: every posting moves its account's balance by its amount, positive on
    the account's normal side. `account.created`: remembers the account's normal side. Other
    event types are recorded as processed and otherwise ignored. `lookup` answers for accounts
    the consumer has no `account.created` event of.
    """
    event = _parse(envelope)
    if not record_event(conn, consumer=consumer_name, event_id=event.event_id):
        return False
    if event.event_type == "account.created":
        _learn_account(conn, consumer_name, event.ledger_id, event.data)
    elif event.event_type == "entry.committed":
        _apply_entry(conn, consumer_name, event.ledger_id, event.data, lookup)
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
    conn: Connection,
    consumer: str,
    ledger_id: uuid.UUID,
    account_ids: list[uuid.UUID],
    lookup: AccountLookup | None,
) -> dict[uuid.UUID, tuple[str, str]]:
    """(normal side, currency) per account: from account.created events seen, else `lookup`."""
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
    for account_id in account_ids:
        if account_id in known or lookup is None:
            continue
        # The account.created event has not arrived, or was published before this consumer
        # started: ask the API, when the consumer holds a key for this ledger.
        found = lookup(ledger_id, account_id)
        if found is not None:
            account_type, currency = found
            learned = {"id": account_id, "type": account_type, "currency": currency}
            _learn_account(conn, consumer, ledger_id, learned)
            known[account_id] = (_normal_side(account_type), currency)
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
    conn: Connection,
    consumer: str,
    ledger_id: uuid.UUID,
    entry: dict[str, Any],
    lookup: AccountLookup | None,
) -> None:
    postings = entry.get("postings")
    if not isinstance(postings, list) or not postings:
        raise InvalidEvent("entry.committed data has a list of postings")
    lines = [_posting_line(posting) for posting in postings]
    deltas: dict[uuid.UUID, int] = {}
    account_ids = sorted({account_id for account_id, _, _ in lines})
    known = _known_accounts(conn, consumer, ledger_id, account_ids, lookup)
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


def mirrored_balances(
    conn: Connection, consumer_name: str, ledger_id: uuid.UUID | str
) -> dict[str, int]:
    """The mirror of one ledger: account id -> mirrored balance."""
    rows = conn.execute(
        sa.select(mirror_balances.c.account_id, mirror_balances.c.balance).where(
            mirror_balances.c.consumer == consumer_name,
            mirror_balances.c.ledger_id == _as_uuid(ledger_id, "ledger_id"),
        )
    )
    return {str(row.account_id): int(row.balance) for row in rows}


def mirrored_ledgers(conn: Connection, consumer_name: str) -> list[str]:
    """The ledgers `consumer_name` holds mirrored balances for."""
    rows = conn.execute(
        sa.select(mirror_balances.c.ledger_id)
        .where(mirror_balances.c.consumer == consumer_name)
        .distinct()
        .order_by(mirror_balances.c.ledger_id)
    )
    return [str(row.ledger_id) for row in rows]


def drift(ledger: dict[str, int], mirrored: dict[str, int]) -> list[dict[str, Any]]:
    """Accounts whose mirrored balance differs from the ledger's (an unseen account mirrors 0)."""
    return [
        {
            "account_id": account_id,
            "ledger_balance": ledger.get(account_id, 0),
            "mirrored_balance": mirrored.get(account_id, 0),
        }
        for account_id in sorted(ledger.keys() | mirrored.keys())
        if ledger.get(account_id, 0) != mirrored.get(account_id, 0)
    ]


def drift_against_api(
    conn: Connection, client: ArusClient, ledger_id: uuid.UUID | str, consumer_name: str
) -> list[dict[str, Any]]:
    """The ledger's balances, as its API reports them, against the mirror of that ledger.

    Empty when the consumer has applied every event of the ledger that is committed.
    """
    ledger = {account.id: account.balance for account in client.iter_accounts(page_size=500)}
    return drift(ledger, mirrored_balances(conn, consumer_name, ledger_id))


def api_lookup(clients: Sequence[ArusClient]) -> AccountLookup:
    """Answer from the API for accounts of the ledgers `clients` hold keys for.

    Account ids are unique across ledgers and a key sees only its own ledger's accounts, so the
    one client that finds the account is the one for its ledger.
    """

    def lookup(ledger_id: uuid.UUID, account_id: uuid.UUID) -> tuple[str, str] | None:
        for client in clients:
            try:
                account = client.get_account(str(account_id))
            except NotFoundError:
                continue
            return account.type, account.currency
        return None

    return lookup


def consume_kafka(
    engine: Engine,
    *,
    bootstrap: str,
    topic: str,
    group_id: str,
    max_messages: int,
    timeout_s: float,
    consumer_name: str | None = None,
    lookup: AccountLookup | None = None,
) -> dict[str, Any]:
    """Mirror balances from `topic` into the consumer tables of `engine`'s database.

    Polls with consumer group `group_id` from the group's committed offsets (the earliest
    offset the first time). Each message is applied with `mirror_event` in its own database
    transaction, deduped under `consumer_name` (default: the group id); offsets are committed
    to Kafka only after those transactions commit, so a crash in between redelivers messages
    that dedupe then skips. Stops after `max_messages`, when every assigned partition is read
    to its end, or after `timeout_s`, whichever comes first.

    Returns {received, applied, duplicates, invalid, ledger_ids}.
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

    assert bootstrap and topic and group_id
    assert 1 <= max_messages <= 10_000_000 and 0 < timeout_s <= 3600
    name = consumer_name or group_id
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
            "bootstrap.servers": bootstrap,
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
        consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
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
                outcome = _apply_message(engine, message.value(), name, lookup)
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


def _apply_message(
    engine: Engine, value: bytes | None, consumer_name: str, lookup: AccountLookup | None
) -> str:
    try:
        envelope = json.loads(value or b"")
        with engine.begin() as conn:
            applied = mirror_event(conn, envelope, consumer_name, lookup=lookup)
            return "applied" if applied else "duplicates"
    except (json.JSONDecodeError, UnicodeDecodeError, InvalidEvent) as exc:
        # A poison message must not stop the stream; it is counted and logged, not applied.
        log.error("skipping a message that is not an applicable event: %s", exc)
        return "invalid"


def drift_by_key(
    conn: Connection, clients: Sequence[ArusClient], consumer_name: str
) -> dict[str, list[dict[str, Any]]]:
    """Drift per ledger a key reads, keyed by ledger id (by key id while nothing is mirrored)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for client in clients:
        ledger = {account.id: account.balance for account in client.iter_accounts(page_size=500)}
        ledger_ids = (
            conn.execute(
                sa.select(mirror_accounts.c.ledger_id)
                .where(
                    mirror_accounts.c.consumer == consumer_name,
                    mirror_accounts.c.account_id.in_([uuid.UUID(a) for a in ledger]),
                )
                .distinct()
            )
            .scalars()
            .all()
        )
        assert len(ledger_ids) <= 1, "a key reads one ledger"
        mirrored = mirrored_balances(conn, consumer_name, ledger_ids[0]) if ledger_ids else {}
        if difference := drift(ledger, mirrored):
            found[str(ledger_ids[0]) if ledger_ids else f"key {client.key_id}"] = difference
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arus-consume", description=__doc__.split("\n")[0])
    env = os.environ.get
    parser.add_argument(
        "--bootstrap",
        default=env("ARUS_KAFKA_BOOTSTRAP"),
        help="Kafka bootstrap servers (ARUS_KAFKA_BOOTSTRAP)",
    )
    parser.add_argument("--topic", default=env("ARUS_KAFKA_TOPIC", DEFAULT_TOPIC))
    parser.add_argument(
        "--database-url",
        default=env("ARUS_CONSUMER_DATABASE_URL"),
        help="SQLAlchemy URL of the consumer's own PostgreSQL database",
    )
    parser.add_argument("--api-url", default=env("ARUS_URL"), help="the Arus API (ARUS_URL)")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        help="a read key per ledger to check for drift (repeatable)",
    )
    parser.add_argument("--group", default="arus-reference-consumer", help="consumer group")
    parser.add_argument("--max-messages", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="s to consume at most")
    args = parser.parse_args(argv)  # fmt: skip
    if not args.bootstrap or not args.database_url:
        parser.error("--bootstrap and --database-url are required (or their env variables)")
    if args.key and not args.api_url:
        parser.error("--key needs --api-url")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    engine = sa.create_engine(args.database_url)
    clients = [ArusClient(args.api_url, key) for key in args.key]
    try:
        result = consume_kafka(
            engine, bootstrap=args.bootstrap, topic=args.topic, group_id=args.group,
            max_messages=args.max_messages, timeout_s=args.timeout, lookup=api_lookup(clients),
        )  # fmt: skip
        with engine.connect() as conn:
            result["drift"] = drift_by_key(conn, clients, args.group)
    except ArusApiError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    finally:
        for client in clients:
            client.close()
        engine.dispose()
    print(json.dumps(result, indent=2, sort_keys=True))
    return 1 if result["drift"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
