"""Ledgers: the tenant boundary. Every API key belongs to exactly one ledger."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from arus.admin import keys
from arus.errors import ValidationError
from arus.ledger.schema import ledgers
from arus.platform.config import MAIN_PLACEMENT


def create_ledger(conn: Connection, name: str) -> uuid.UUID:
    if not 1 <= len(name) <= 200:
        raise ValidationError("a ledger name is 1-200 characters")
    ledger_id: uuid.UUID = conn.execute(
        ledgers.insert().values(name=name).returning(ledgers.c.id)
    ).scalar_one()
    return ledger_id


def ledger_ids(conn: Connection, *, created_before: dt.datetime | None = None) -> list[uuid.UUID]:
    query = sa.select(ledgers.c.id).order_by(ledgers.c.created_at)
    if created_before is not None:
        query = query.where(ledgers.c.created_at < created_before)
    return list(conn.execute(query).scalars())


def create_ledger_with_keys(
    engine: Engine, name: str, placement: str = MAIN_PLACEMENT
) -> dict[str, str]:
    """A new ledger and its first write and read keys, in one transaction (the keys are shown
    once: only their hashes are stored)."""
    with engine.begin() as conn:
        ledger_id = create_ledger(conn, name)
        write = keys.issue_key(conn, ledger_id=ledger_id, scope="write", placement=placement)
        read = keys.issue_key(conn, ledger_id=ledger_id, scope="read", placement=placement)
    return {"ledger_id": str(ledger_id), "name": name, "write_key": write.key, "read_key": read.key}
