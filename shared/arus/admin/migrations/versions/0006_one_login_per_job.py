"""One login per job, and definer functions that reach only their own objects (SPEC §3.6).

- Every SECURITY DEFINER function's search_path ends with `pg_temp` (ledger/sql/*.sql), and
  runtime roles may not create temporary objects, so a caller's temp `api_keys` or `balances`
  can never stand in for the ledger's.
- The relay and the close get roles of their own (`arus_relay`, `arus_close`); the API's role
  (`arus_app`) loses the outbox, the close and prune (admin/grants.py is the table).
- The close is computed inside the database (`arus_close_day`): `arus_store_close`, which stored
  a report its caller passed in, is dropped.
- A relay marks published only the events its own transaction claimed.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from arus.admin import grants
from arus.ledger import engine_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS arus_store_close(uuid, date, json, jsonb)")
    engine_sql.apply(op.execute)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the ledger moves forward only")
