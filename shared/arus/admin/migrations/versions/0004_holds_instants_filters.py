"""Holds, balances at an instant, closed days and filtered reads (SPEC §3, §3.2, §3.3).

- Pending entries: `entries.pending` and `expires_at`, `entries.posts` (a posting entry names
  the pending entry it posts: UNIQUE, so at most one); their lines in `pending_postings`
  (append-only, never in `postings`, so balances, trial balance, close and drift stay posted);
  `pending_outcomes` (append-only; its primary key makes exactly one outcome per pending
  entry: posted, voided or expired); `holds`, the working set of reservations not yet
  resolved, which the engine deletes when it resolves them; `balances.pending_debits` and
  `pending_credits`, the materialized sums of an account's holds, under its row lock.
- Balances at an instant: postings carry their entry's `created_at`, indexed per account.
- Filtered reads: the indexes the list filters use.

Functions whose signature changed are dropped first, then the engine files are applied.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from arus.ledger import engine_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
DROP FUNCTION IF EXISTS arus_post_entry(text, bytea, text, text, text, date, jsonb, jsonb);

ALTER TABLE entries
    ADD COLUMN pending boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN posts uuid,
    ADD CONSTRAINT entries_posts_key UNIQUE (posts),
    ADD CONSTRAINT entries_posts_fkey FOREIGN KEY (ledger_id, posts)
        REFERENCES entries (ledger_id, id),
    ADD CONSTRAINT entries_expiry_only_pending CHECK (pending OR expires_at IS NULL),
    ADD CONSTRAINT entries_posts_only_posted CHECK (posts IS NULL OR NOT pending);

CREATE TABLE pending_postings (
    entry_id   uuid NOT NULL,
    ledger_id  uuid NOT NULL,
    account_id uuid NOT NULL,
    position   smallint NOT NULL CHECK (position BETWEEN 1 AND 100),
    direction  text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount     bigint NOT NULL CHECK (amount > 0),
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (entry_id, position),
    FOREIGN KEY (ledger_id, entry_id) REFERENCES entries (ledger_id, id),
    FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id)
);
CREATE INDEX pending_postings_account_idx ON pending_postings (account_id, entry_id);

CREATE TABLE pending_outcomes (
    entry_id    uuid PRIMARY KEY,
    ledger_id   uuid NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('posted', 'voided', 'expired')),
    resolved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (ledger_id, entry_id) REFERENCES entries (ledger_id, id)
);

-- Reservations not yet resolved, one row per pending line. Not journal: the engine deletes a
-- row when its entry is posted, voided or swept after expiry. A hold past its expires_at no
-- longer counts from that instant: readers and the engine subtract it until the sweep runs.
CREATE TABLE holds (
    entry_id   uuid NOT NULL,
    position   smallint NOT NULL,
    ledger_id  uuid NOT NULL,
    account_id uuid NOT NULL,
    direction  text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount     bigint NOT NULL CHECK (amount > 0),
    expires_at timestamptz,
    PRIMARY KEY (entry_id, position),
    FOREIGN KEY (entry_id, position) REFERENCES pending_postings (entry_id, position)
);
CREATE INDEX holds_account_expiry_idx ON holds (account_id, expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX holds_expiry_idx ON holds (expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE balances
    ADD COLUMN pending_debits bigint NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    ADD COLUMN pending_credits bigint NOT NULL DEFAULT 0 CHECK (pending_credits >= 0);

-- A posting's instant is its entry's created_at (stamped under the ledger row lock, so per
-- ledger it orders like ledger_seq and like commit). Existing rows are filled in once, here,
-- by the owner with the append-only trigger held off for the statement.
ALTER TABLE postings ADD COLUMN created_at timestamptz;
ALTER TABLE postings DISABLE TRIGGER postings_append_only;
UPDATE postings p SET created_at = e.created_at FROM entries e WHERE e.id = p.entry_id;
ALTER TABLE postings ENABLE TRIGGER postings_append_only;
ALTER TABLE postings ALTER COLUMN created_at SET NOT NULL;
CREATE INDEX postings_account_instant_idx ON postings (account_id, created_at DESC, id DESC)
    INCLUDE (balance_after);

-- Filtered reads (SPEC §3): by effective date, by metadata containment, by type and currency.
CREATE INDEX entries_effective_idx ON entries (ledger_id, effective_date, ledger_seq);
CREATE INDEX entries_metadata_idx ON entries USING gin (metadata jsonb_path_ops);
CREATE INDEX entries_pending_idx ON entries (ledger_id, ledger_seq) WHERE pending;
CREATE INDEX accounts_type_idx ON accounts (ledger_id, type, code);
CREATE INDEX accounts_currency_idx ON accounts (ledger_id, currency, code);
CREATE INDEX accounts_metadata_idx ON accounts USING gin (metadata jsonb_path_ops);
"""

TRIGGERS = """
CREATE TRIGGER pending_postings_append_only BEFORE UPDATE OR DELETE ON pending_postings
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER pending_postings_no_truncate BEFORE TRUNCATE ON pending_postings
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER pending_outcomes_append_only BEFORE UPDATE OR DELETE ON pending_outcomes
    FOR EACH ROW EXECUTE FUNCTION arus_reject_change();
CREATE TRIGGER pending_outcomes_no_truncate BEFORE TRUNCATE ON pending_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_change();
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    engine_sql.apply(op.execute)
    op.execute(TRIGGERS)


def downgrade() -> None:
    raise NotImplementedError("the ledger moves forward only")
