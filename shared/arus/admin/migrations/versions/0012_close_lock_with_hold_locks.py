"""A post or void of a pending entry takes the ledger's close lock where it takes the hold's
balance rows (arus_lock_hold_accounts), once, instead of each entry point taking it beside that
call. No table changes.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    engine_sql.apply(op.execute)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the engine moves forward only")
