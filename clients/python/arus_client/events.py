"""Consumer-side dedupe of Arus events (SPEC §4): each event takes effect once per consumer.

The relay delivers at least once, so a consumer sees some events twice. It dedupes by
`event_id`: `record_event` inserts the id into the consumer's own `processed_events` table (in
the schema `consumer` of the consumer's own PostgreSQL database) in the same transaction as the
side effect, and the side effect runs only when the insert was new. Either both commit or
neither does. The table is keyed by consumer name, so several consumers can share a database
without seeing each other's progress.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

SCHEMA = "consumer"

DEDUPE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};

-- One row per (consumer, event) ever applied: the dedupe record, written in the same
-- transaction as the event's side effect.
CREATE TABLE IF NOT EXISTS {SCHEMA}.processed_events (
    consumer     text NOT NULL CHECK (length(consumer) BETWEEN 1 AND 200),
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, event_id)
);
"""

metadata = sa.MetaData(schema=SCHEMA)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
)


def ensure_schema(conn: Connection, ddl: str = "") -> None:
    """Create the dedupe table, and `ddl`, if missing (idempotent, safe to race)."""
    # CREATE ... IF NOT EXISTS can still collide when two processes run it at once.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('arus_client.consumer.schema'))"))
    conn.exec_driver_sql(DEDUPE_DDL + ddl)


def record_event(conn: Connection, *, consumer: str, event_id: uuid.UUID | str) -> bool:
    """Record that `consumer` processed `event_id`; True when this is the first time.

    Call it inside the transaction that performs the side effect and skip the side effect when
    it returns False. A concurrent transaction recording the same event waits for this one:
    if this one commits, it gets False; if this one rolls back, it gets True.
    """
    event = event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))
    inserted = conn.execute(
        pg_insert(processed_events)
        .values(consumer=consumer, event_id=event)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(processed_events.c.event_id)
    ).first()
    return inserted is not None
