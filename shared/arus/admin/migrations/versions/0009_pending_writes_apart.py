"""Engine v3, step 4 (issue 17): a pending entry's lines and holds are written by a statement of
their own, run only by a call that has pending entries; the record statement of every other call
no longer starts two empty inserts and their two statement-level checks. With it, two mends
from a hostile review: the expiry sweep (which spans every ledger) skips balance rows another
transaction holds instead of waiting for them, and a batch refuses two items under one key or a
refused item that carries a key. No table changes.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    engine_sql.apply(op.execute)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the engine moves forward only")
