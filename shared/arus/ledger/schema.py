"""SQLAlchemy Core descriptions of the tables the migrations create (read and admin paths).

The migrations in arus/migrations are the source of truth; these mirror the columns the Python
code touches, so statements stay visible SQL with typed columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSON, JSONB, UUID

metadata = sa.MetaData()

ledgers = sa.Table(
    "ledgers",
    metadata,
    sa.Column(
        "id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("last_ledger_seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("secret_hash", BYTEA, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("allow_negative", sa.Boolean, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

balances = sa.Table(
    "balances",
    metadata,
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("normal_side", sa.Text, nullable=False),
    sa.Column("allow_negative", sa.Boolean, nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("posting_count", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pending_debits", sa.BigInteger, nullable=False),
    sa.Column("pending_credits", sa.BigInteger, nullable=False),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("ledger_seq", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("reverses", UUID(as_uuid=True)),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pending", sa.Boolean, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("posts", UUID(as_uuid=True)),
)

postings = sa.Table(
    "postings",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("entry_id", UUID(as_uuid=True), nullable=False),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("account_id", UUID(as_uuid=True), nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("account_version", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A pending entry's lines (journal), its one outcome (journal), and its holds (working set).
pending_postings = sa.Table(
    "pending_postings",
    metadata,
    sa.Column("entry_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("position", sa.SmallInteger, primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("account_id", UUID(as_uuid=True), nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
)

pending_outcomes = sa.Table(
    "pending_outcomes",
    metadata,
    sa.Column("entry_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("entry_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("position", sa.SmallInteger, primary_key=True),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("account_id", UUID(as_uuid=True), nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False),
    sa.Column("ledger_id", UUID(as_uuid=True), nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("ledger_seq", sa.BigInteger),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("envelope", JSON, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

daily_closes = sa.Table(
    "daily_closes",
    metadata,
    sa.Column("ledger_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("close_date", sa.Date, primary_key=True),
    sa.Column("report", JSONB, nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_ledger_seq", sa.BigInteger, nullable=False),
    sa.Column("seal", sa.Text, nullable=False),
)

balance_snapshots = sa.Table(
    "balance_snapshots",
    metadata,
    sa.Column("ledger_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("close_date", sa.Date, primary_key=True),
    sa.Column("account_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),
)
