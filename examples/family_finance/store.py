"""The app's own store: its transactions, its balance, and the shadow queue beside them.

Every change writes the app's row and queues its shadow write in ONE transaction of the app's
own database: both commit or neither does, and nothing here waits on the ledger.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from arus_client import shadow
from sqlalchemy.engine import Connection, Engine

Kind = Literal["expense", "income"]

metadata = sa.MetaData()

household = sa.Table(
    "household",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1: one household per store
    sa.Column("ledger_namespace", sa.String(24), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("occurred_on", sa.Date, nullable=False),
    sa.Column("description", sa.String(200), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.CheckConstraint("kind IN ('expense', 'income')", name="transactions_kind"),
    sa.CheckConstraint("amount_minor > 0", name="transactions_amount_positive"),
)


class NoSuchTransaction(LookupError):
    pass


@dataclass(frozen=True)
class Household:
    namespace: str
    currency: str

    @property
    def shadow_config(self) -> shadow.ShadowConfig:
        return shadow.ShadowConfig(namespace=self.namespace, currency=self.currency)


def engine_for(store: str) -> Engine:
    """A path is a SQLite file; anything with :// is a database URL (PostgreSQL via pg8000)."""
    if "://" not in store:
        return sa.create_engine(f"sqlite:///{store}")
    if store.startswith("postgresql://"):
        store = "postgresql+pg8000://" + store.removeprefix("postgresql://")
    return sa.create_engine(store)


def open_store(engine: Engine, *, currency: str = "USD") -> Household:
    """Create the app's tables and the shadow tables (idempotent); returns the household."""
    metadata.create_all(engine)
    shadow.create_tables(engine)
    with engine.begin() as conn:
        row = conn.execute(sa.select(household)).first()
        if row is None:
            # The namespace keeps this store's accounts and idempotency keys apart from any
            # other store mirrored into the same ledger (a second demo run, say).
            namespace = f"ff-{secrets.token_hex(4)}"
            conn.execute(
                household.insert().values(
                    id=1, ledger_namespace=namespace, currency=currency, created_at=_now()
                )
            )
            return Household(namespace, currency)
    return Household(row.ledger_namespace, row.currency)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _source_id(txn_id: int) -> str:
    return f"t{txn_id}"


def _shadow_txn(row: sa.Row[tuple[object, ...]] | sa.RowMapping) -> shadow.ShadowTransaction:
    values = row._mapping if isinstance(row, sa.Row) else row
    return shadow.ShadowTransaction(
        source_id=_source_id(int(values["id"])),
        version=int(values["version"]),
        kind=values["kind"],
        amount_minor=int(values["amount_minor"]),
        occurred_on=values["occurred_on"],
        category=values["category"],
        description=values["description"],
    )


def add_transaction(
    engine: Engine,
    *,
    kind: Kind,
    amount_minor: int,
    category: str,
    occurred_on: dt.date,
    description: str | None = None,
) -> str:
    """Record an expense or an income; returns its id. Floats are refused before any write."""
    shadow.check_amount_minor(amount_minor)
    with engine.begin() as conn:
        txn_id = conn.execute(
            transactions.insert()
            .values(
                kind=kind,
                category=category,
                amount_minor=amount_minor,
                occurred_on=occurred_on,
                description=description,
                version=1,
                deleted=False,
                updated_at=_now(),
            )
            .returning(transactions.c.id)
        ).scalar_one()
        shadow.enqueue_create(conn, _shadow_txn(_row(conn, int(txn_id))))
    return _source_id(int(txn_id))


def change_amount(engine: Engine, source_id: str, amount_minor: int) -> int:
    """Change a transaction's amount; returns its new version."""
    shadow.check_amount_minor(amount_minor)
    txn_id = _parse_id(source_id)
    with engine.begin() as conn:
        row = _row(conn, txn_id)
        version = int(row.version) + 1
        conn.execute(
            transactions.update()
            .where(transactions.c.id == txn_id)
            .values(amount_minor=amount_minor, version=version, updated_at=_now())
        )
        shadow.enqueue_update(conn, _shadow_txn(_row(conn, txn_id)))
    return version


def delete_transaction(engine: Engine, source_id: str) -> int:
    """Delete a transaction (kept as a tombstone); returns the version the delete carries."""
    txn_id = _parse_id(source_id)
    with engine.begin() as conn:
        row = _row(conn, txn_id)
        version = int(row.version) + 1
        conn.execute(
            transactions.update()
            .where(transactions.c.id == txn_id)
            .values(deleted=True, version=version, updated_at=_now())
        )
        shadow.enqueue_delete(conn, source_id=source_id, version=version)
    return version


def _parse_id(source_id: str) -> int:
    if not source_id.startswith("t") or not source_id[1:].isdigit():
        raise NoSuchTransaction(f"no transaction {source_id!r}")
    return int(source_id[1:])


def _row(conn: Connection, txn_id: int) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(
        sa.select(transactions).where(
            transactions.c.id == txn_id, transactions.c.deleted.is_(False)
        )
    ).first()
    if row is None:
        raise NoSuchTransaction(f"no transaction {_source_id(txn_id)}")
    return row


def live_transactions(engine: Engine) -> list[shadow.ShadowTransaction]:
    """The app's current view: every transaction not deleted, at its latest version."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(transactions)
            .where(transactions.c.deleted.is_(False))
            .order_by(transactions.c.id)
        ).all()
    return [_shadow_txn(row) for row in rows]


def cash_balance(engine: Engine) -> int:
    """The app's own cash balance, from its own table (what its users see)."""
    signed = sa.case(
        (transactions.c.kind == "income", transactions.c.amount_minor),
        else_=-transactions.c.amount_minor,
    )
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(signed), 0)).where(
                transactions.c.deleted.is_(False)
            )
        ).scalar_one()
    return int(total)
