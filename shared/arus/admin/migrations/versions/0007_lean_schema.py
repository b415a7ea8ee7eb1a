"""A lean schema with the same integrity (issue 17): per-statement checks on the write path.

What the posting path paid per row, and what replaces it (ledger/sql/integrity.sql):

- Per-row CHECKs on the tables it writes (and on `ledgers`, whose row it updates once per call:
  an UPDATE evaluates every CHECK of its table) become domains: `arus_currency`,
  `arus_direction`, `arus_amount`, ... A domain's check is compiled once into the type cache; a
  table's CHECKs are rebuilt from their stored text at every statement's executor start.
- Multi-column CHECKs (`balances_non_negative`, `entries_not_self_reversal`,
  `entries_expiry_only_pending`, `entries_posts_only_posted`) and the foreign keys of those
  tables (an index lookup and a FOR KEY SHARE lock per row: the ledger row was locked four times
  per posting) become statement-level AFTER triggers over the statement's transition table,
  raising the same SQLSTATE under the same constraint name. Nothing locks the rows they find,
  so ledgers, accounts and balances may no longer be deleted, truncated or re-keyed, and the
  rows that name a ledger or a pending line keep those columns; the journal is append-only.
- The deferred per-entry balance trigger `entries_balanced` becomes the lines' statement check
  (2..100 lines balancing per currency, for every entry a statement wrote lines for) and, at
  commit, `entries_have_lines`: one index probe proving each new entry has lines at all.
  Lines are written in one statement per entry (the engine does): an entry whose lines came in
  several statements, unbalanced in between, was accepted before and is refused now.
- Indexes no read or constraint uses are dropped: `balances_ledger_idx` (balances are found by
  account) and `api_keys_ledger_idx` (keys are found by id; it served the foreign key's checks
  when a ledger was deleted, which no longer happens). docs/reports/explain-reads.md shows each
  read's plan on its index after this migration.

The cold tables keep their CHECKs and foreign keys: accounts, api_keys, daily_closes,
balance_snapshots and ledger_close_locks are written by administration or once a day, never by
a posting. Every row is kept: columns change type in place (checked against the domain).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DOMAINS = """
CREATE DOMAIN arus_currency AS text CHECK (VALUE ~ '^[A-Z]{3}$');
CREATE DOMAIN arus_direction AS text CHECK (VALUE IN ('debit', 'credit'));
CREATE DOMAIN arus_amount AS bigint CHECK (VALUE > 0);
CREATE DOMAIN arus_position AS smallint CHECK (VALUE BETWEEN 1 AND 100);
CREATE DOMAIN arus_counter AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN arus_ledger_seq AS bigint CHECK (VALUE >= 1);
CREATE DOMAIN arus_name AS text CHECK (length(VALUE) BETWEEN 1 AND 200);
CREATE DOMAIN arus_description AS text CHECK (length(VALUE) <= 1000);
CREATE DOMAIN arus_json_object AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE DOMAIN arus_idempotency_key AS text CHECK (length(VALUE) BETWEEN 1 AND 255);
CREATE DOMAIN arus_event_type AS text CHECK (VALUE ~ '^[a-z]+\\.[a-z_]+$');
CREATE DOMAIN arus_outcome AS text CHECK (VALUE IN ('posted', 'voided', 'expired'));
"""

# Each CHECK, dropped, and its column typed by the domain that says the same.
COLUMNS = """
ALTER TABLE ledgers
    DROP CONSTRAINT ledgers_name_check,
    DROP CONSTRAINT ledgers_last_ledger_seq_check,
    ALTER COLUMN name TYPE arus_name,
    ALTER COLUMN last_ledger_seq TYPE arus_counter;

ALTER TABLE balances
    DROP CONSTRAINT balances_currency_check,
    DROP CONSTRAINT balances_normal_side_check,
    DROP CONSTRAINT balances_posting_count_check,
    DROP CONSTRAINT balances_pending_debits_check,
    DROP CONSTRAINT balances_pending_credits_check,
    DROP CONSTRAINT balances_non_negative,
    DROP CONSTRAINT balances_ledger_id_account_id_fkey,
    ALTER COLUMN currency TYPE arus_currency,
    ALTER COLUMN normal_side TYPE arus_direction,
    ALTER COLUMN posting_count TYPE arus_counter,
    ALTER COLUMN pending_debits TYPE arus_counter,
    ALTER COLUMN pending_credits TYPE arus_counter;

ALTER TABLE entries
    DROP CONSTRAINT entries_ledger_seq_check,
    DROP CONSTRAINT entries_description_check,
    DROP CONSTRAINT entries_metadata_check,
    DROP CONSTRAINT entries_not_self_reversal,
    DROP CONSTRAINT entries_expiry_only_pending,
    DROP CONSTRAINT entries_posts_only_posted,
    DROP CONSTRAINT entries_ledger_id_fkey,
    DROP CONSTRAINT entries_reverses_fkey,
    DROP CONSTRAINT entries_posts_fkey,
    ALTER COLUMN ledger_seq TYPE arus_ledger_seq,
    ALTER COLUMN description TYPE arus_description,
    ALTER COLUMN metadata TYPE arus_json_object;

ALTER TABLE postings
    DROP CONSTRAINT postings_position_check,
    DROP CONSTRAINT postings_direction_check,
    DROP CONSTRAINT postings_amount_check,
    DROP CONSTRAINT postings_currency_check,
    DROP CONSTRAINT postings_ledger_id_entry_id_fkey,
    DROP CONSTRAINT postings_ledger_id_account_id_fkey,
    ALTER COLUMN position TYPE arus_position,
    ALTER COLUMN direction TYPE arus_direction,
    ALTER COLUMN amount TYPE arus_amount,
    ALTER COLUMN currency TYPE arus_currency;

ALTER TABLE pending_postings
    DROP CONSTRAINT pending_postings_position_check,
    DROP CONSTRAINT pending_postings_direction_check,
    DROP CONSTRAINT pending_postings_amount_check,
    DROP CONSTRAINT pending_postings_currency_check,
    DROP CONSTRAINT pending_postings_ledger_id_entry_id_fkey,
    DROP CONSTRAINT pending_postings_ledger_id_account_id_fkey,
    ALTER COLUMN position TYPE arus_position,
    ALTER COLUMN direction TYPE arus_direction,
    ALTER COLUMN amount TYPE arus_amount,
    ALTER COLUMN currency TYPE arus_currency;

ALTER TABLE holds
    DROP CONSTRAINT holds_direction_check,
    DROP CONSTRAINT holds_amount_check,
    DROP CONSTRAINT holds_entry_id_position_fkey,
    ALTER COLUMN direction TYPE arus_direction,
    ALTER COLUMN amount TYPE arus_amount;

ALTER TABLE pending_outcomes
    DROP CONSTRAINT pending_outcomes_outcome_check,
    DROP CONSTRAINT pending_outcomes_ledger_id_entry_id_fkey,
    ALTER COLUMN outcome TYPE arus_outcome;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_key_check,
    DROP CONSTRAINT idempotency_keys_ledger_id_fkey,
    ALTER COLUMN key TYPE arus_idempotency_key;

ALTER TABLE outbox_events
    DROP CONSTRAINT outbox_events_event_type_check,
    DROP CONSTRAINT outbox_events_ledger_id_fkey,
    ALTER COLUMN event_type TYPE arus_event_type;
"""

# The foreign keys and multi-column checks, once per statement over its new rows.
CHECKS = """
DROP TRIGGER entries_balanced ON entries;
CREATE CONSTRAINT TRIGGER entries_have_lines AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION arus_check_entry_has_lines();
CREATE TRIGGER entries_checked AFTER INSERT ON entries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_entries();
CREATE TRIGGER postings_checked AFTER INSERT ON postings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_lines();
CREATE TRIGGER pending_postings_checked AFTER INSERT ON pending_postings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_lines();
CREATE TRIGGER holds_checked AFTER INSERT ON holds REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_holds();
CREATE TRIGGER pending_outcomes_checked AFTER INSERT ON pending_outcomes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_outcomes();
CREATE TRIGGER idempotency_keys_checked AFTER INSERT ON idempotency_keys
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_ledger_rows();
CREATE TRIGGER outbox_events_checked AFTER INSERT ON outbox_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_new_ledger_rows();
CREATE TRIGGER balances_checked_insert AFTER INSERT ON balances
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_balances();
CREATE TRIGGER balances_checked_update AFTER UPDATE ON balances
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION arus_check_balances();
"""

# What those checks rely on: the rows they find stay, under the same keys.
KEPT = """
CREATE TRIGGER ledgers_kept BEFORE DELETE ON ledgers
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER ledgers_no_truncate BEFORE TRUNCATE ON ledgers
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER ledgers_keys_fixed BEFORE UPDATE OF id ON ledgers
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER accounts_keys_fixed BEFORE UPDATE OF id, ledger_id ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER balances_kept BEFORE DELETE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER balances_no_truncate BEFORE TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER balances_keys_fixed BEFORE UPDATE OF account_id, ledger_id ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER holds_keys_fixed BEFORE UPDATE OF entry_id, position ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER idempotency_keys_keys_fixed BEFORE UPDATE OF ledger_id ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
CREATE TRIGGER outbox_events_keys_fixed BEFORE UPDATE OF ledger_id ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION arus_reject_removal();
"""

UNUSED_INDEXES = """
DROP INDEX balances_ledger_idx;
DROP INDEX api_keys_ledger_idx;
"""


def upgrade() -> None:
    engine_sql.apply(op.execute)  # integrity.sql's functions, which the triggers call
    op.execute(DOMAINS)
    op.execute(COLUMNS)
    op.execute(CHECKS)
    op.execute(KEPT)
    op.execute(UNUSED_INDEXES)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the ledger moves forward only")
