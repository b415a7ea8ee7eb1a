"""Ledger core: ledgers, keys, accounts, balances, entries, postings, idempotency, outbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from arus.ledger import engine_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE ledgers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Gap-free per-ledger entry counter; bumped under the ledger row lock by the posting path.
    last_ledger_seq bigint NOT NULL DEFAULT 0 CHECK (last_ledger_seq >= 0),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    ledger_id   uuid NOT NULL REFERENCES ledgers (id),
    scope       text NOT NULL CHECK (scope IN ('read', 'write')),
    -- sha256 of the secret part; the key itself is never stored.
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_ledger_idx ON api_keys (ledger_id);

CREATE TABLE accounts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ledger_id      uuid NOT NULL REFERENCES ledgers (id),
    code           text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type           text NOT NULL
                   CHECK (type IN ('asset', 'expense', 'liability', 'equity', 'revenue')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    allow_negative boolean NOT NULL DEFAULT false,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT accounts_ledger_code_key UNIQUE (ledger_id, code),
    CONSTRAINT accounts_ledger_id_key UNIQUE (ledger_id, id)
);

-- Materialized balance per account, signed in the account's normal direction. Updated only by
-- arus_write_entry, under row locks taken in ascending account id order.
CREATE TABLE balances (
    account_id     uuid PRIMARY KEY,
    ledger_id      uuid NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    normal_side    text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    allow_negative boolean NOT NULL,
    balance        bigint NOT NULL DEFAULT 0,
    posting_count  bigint NOT NULL DEFAULT 0 CHECK (posting_count >= 0),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id),
    -- Defence in depth behind the engine's own overdraft check.
    CONSTRAINT balances_non_negative CHECK (allow_negative OR balance >= 0)
);
CREATE INDEX balances_ledger_idx ON balances (ledger_id);

CREATE TABLE entries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ledger_id       uuid NOT NULL REFERENCES ledgers (id),
    ledger_seq      bigint NOT NULL CHECK (ledger_seq >= 1),
    description     text CHECK (length(description) <= 1000),
    effective_date  date NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- A reversal points at its original; UNIQUE makes a second reversal impossible. The
    -- original's `reversed_by` is derived from this column, so entries are never updated.
    reverses        uuid,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT entries_ledger_seq_key UNIQUE (ledger_id, ledger_seq),
    CONSTRAINT entries_ledger_id_key UNIQUE (ledger_id, id),
    CONSTRAINT entries_reverses_key UNIQUE (reverses),
    CONSTRAINT entries_reverses_fkey FOREIGN KEY (ledger_id, reverses)
        REFERENCES entries (ledger_id, id),
    CONSTRAINT entries_not_self_reversal CHECK (reverses IS DISTINCT FROM id)
);

CREATE TABLE postings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id      uuid NOT NULL,
    ledger_id     uuid NOT NULL,
    account_id    uuid NOT NULL,
    position      smallint NOT NULL CHECK (position BETWEEN 1 AND 100),
    direction     text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The account's balance right after this posting, computed under the row lock.
    balance_after bigint NOT NULL,
    FOREIGN KEY (ledger_id, entry_id) REFERENCES entries (ledger_id, id),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id),
    CONSTRAINT postings_entry_position_key UNIQUE (entry_id, position)
);
CREATE INDEX postings_account_idx ON postings (account_id, id DESC);

CREATE TABLE idempotency_keys (
    ledger_id   uuid NOT NULL REFERENCES ledgers (id),
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 over method, route and canonical body: same key + other request = conflict.
    fingerprint text NOT NULL,
    status_code smallint,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (ledger_id, key)
);

CREATE TABLE outbox_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    ledger_id    uuid NOT NULL REFERENCES ledgers (id),
    event_type   text NOT NULL CHECK (event_type ~ '^[a-z]+\\.[a-z_]+$'),
    ledger_seq   bigint,
    occurred_at  timestamptz NOT NULL,
    -- The whole SPEC §4 envelope, exactly as it is published.
    envelope     jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_events_unpublished_idx ON outbox_events (id) WHERE published_at IS NULL;
"""

# The engine's functions live in arus/ledger/sql/*.sql (see arus.ledger.engine_sql); the
# triggers that use them are part of the schema.
TRIGGERS = """
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION arus_check_entry_balanced();
"""


def upgrade() -> None:
    op.execute(TABLES)
    engine_sql.apply(op.execute)
    op.execute(TRIGGERS)


def downgrade() -> None:
    raise NotImplementedError("the ledger core is never dropped by a migration")
