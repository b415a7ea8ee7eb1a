"""Engine v3 (issue 17): the posting path as readable steps over row types, each rule once.

`arus_write_entries` takes `arus_item[]` (the new row types `arus_item`, `arus_line` and
`arus_refusal` come with ledger/sql/judgement.sql) instead of a JSON array and a flag, and
returns its results instead of a JSON document to re-parse; the old signature is dropped, then
the engine files are applied. Every row is kept: no table changes.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS arus_write_entries(uuid, jsonb, boolean, boolean)")
    engine_sql.apply(op.execute)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the engine moves forward only")
