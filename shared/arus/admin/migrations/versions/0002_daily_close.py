"""Daily close: per-ledger close reports and end-of-day balance snapshots.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQL = """
-- One row per (ledger, UTC date) that closed cleanly: the report proves the trial balance
-- netted to zero with no drift. A close is written once; a rerun reads it back.
CREATE TABLE daily_closes (
    ledger_id  uuid NOT NULL REFERENCES ledgers (id),
    close_date date NOT NULL,
    report     jsonb NOT NULL CHECK (jsonb_typeof(report) = 'object'),
    closed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (ledger_id, close_date)
);

-- Every account's balance at the end of close_date (UTC), signed in its normal direction.
CREATE TABLE balance_snapshots (
    ledger_id  uuid NOT NULL,
    close_date date NOT NULL,
    account_id uuid NOT NULL,
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    bigint NOT NULL,
    PRIMARY KEY (ledger_id, close_date, account_id),
    FOREIGN KEY (ledger_id, close_date) REFERENCES daily_closes (ledger_id, close_date),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id)
);

CREATE TRIGGER daily_closes_append_only BEFORE UPDATE OR DELETE ON daily_closes
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER daily_closes_no_truncate BEFORE TRUNCATE ON daily_closes
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER balance_snapshots_append_only BEFORE UPDATE OR DELETE ON balance_snapshots
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER balance_snapshots_no_truncate BEFORE TRUNCATE ON balance_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();

-- The close reads postings of entries booked before a cut-off.
CREATE INDEX entries_ledger_created_idx ON entries (ledger_id, created_at);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("closes are never dropped by a migration")
