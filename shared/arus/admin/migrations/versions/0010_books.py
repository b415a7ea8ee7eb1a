"""Books an auditor can sign (issue 18): closes by effective date and a sealed journal.

- `daily_closes` gains `last_ledger_seq` and `seal` (SPEC §3.5): the SHA-256 chain over the
  journal (ledger/sql/close.sql, docs/seal.md). A close made before this migration is sealed
  here, in date order per ledger, over the entries up to the `last_ledger_seq` its report gave
  and the pending outcomes resolved before its `closed_at`, so `arus verify` checks every close.
- The close snapshots the books by `effective_date` (SPEC §3.3), no longer by `created_at`;
  `arus_close_snapshot` takes the day instead of an instant.
- The engine refuses, for a retry, a call dated on a day that ended before it took the ledger
  row without the close lock; posting and voiding a pending entry take the close lock shared.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SEAL_EXISTING = """
ALTER TABLE daily_closes DISABLE TRIGGER daily_closes_append_only;
DO $$
DECLARE
    v_close record;
    v_ledger uuid;
    v_seal text;  -- the previous close's, of the same ledger
    v_last_seq bigint;
    v_closed_at timestamptz;
BEGIN
    FOR v_close IN SELECT * FROM daily_closes ORDER BY ledger_id, close_date LOOP
        IF v_ledger IS DISTINCT FROM v_close.ledger_id THEN
            v_ledger := v_close.ledger_id;
            v_seal := NULL;
            v_last_seq := 0;
            v_closed_at := '-infinity';
        END IF;
        v_seal := arus_journal_seal(
            v_ledger, v_seal, v_last_seq,
            coalesce((v_close.report ->> 'last_ledger_seq')::bigint, 0), v_closed_at,
            v_close.closed_at);
        v_last_seq := coalesce((v_close.report ->> 'last_ledger_seq')::bigint, 0);
        v_closed_at := v_close.closed_at;
        UPDATE daily_closes SET last_ledger_seq = v_last_seq, seal = v_seal
        WHERE ledger_id = v_ledger AND close_date = v_close.close_date;
    END LOOP;
END $$;
ALTER TABLE daily_closes ENABLE TRIGGER daily_closes_append_only;
ALTER TABLE daily_closes ALTER COLUMN last_ledger_seq SET NOT NULL,
                         ALTER COLUMN seal SET NOT NULL;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE daily_closes ADD COLUMN last_ledger_seq bigint, ADD COLUMN seal text")
    op.execute("DROP FUNCTION IF EXISTS arus_close_snapshot(uuid, timestamptz)")
    engine_sql.apply(op.execute)
    op.execute(SEAL_EXISTING)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the books move forward only")
