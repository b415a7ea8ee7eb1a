"""Engine v2: the set-based posting engine from arus/ledger/sql, authorised in the same call.

Stored responses and outbox envelopes become `json`, so they keep the field order the API
documents. Functions whose signature or return type changed are dropped, then the engine files
are applied (arus.ledger.engine_sql).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from arus.ledger import engine_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DROP_V1 = """
DROP FUNCTION IF EXISTS arus_post_entry(uuid, text, text, text, date, jsonb, jsonb);
DROP FUNCTION IF EXISTS arus_reverse_entry(uuid, text, text, uuid, text, date);
DROP FUNCTION IF EXISTS arus_create_account(
    uuid, text, text, text, text, text, text, boolean, jsonb);
DROP FUNCTION IF EXISTS arus_write_entry(uuid, text, text, date, jsonb, jsonb, uuid);
DROP FUNCTION IF EXISTS arus_store_response(uuid, text, int, jsonb);
DROP FUNCTION IF EXISTS arus_enqueue_event(uuid, text, bigint, timestamptz, jsonb);
DROP FUNCTION IF EXISTS arus_claim_idempotency_key(uuid, text, text);
DROP FUNCTION IF EXISTS arus_account_json(uuid);
DROP FUNCTION IF EXISTS arus_entry_json(uuid);
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE json USING response::json;
ALTER TABLE outbox_events ALTER COLUMN envelope TYPE json USING envelope::json;
"""


def upgrade() -> None:
    op.execute(DROP_V1)
    engine_sql.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the engine moves forward only")
