"""One login per job, and definer functions that reach only their own objects (SPEC §3.6).

- Every SECURITY DEFINER function's search_path ends with `pg_temp` (ledger/sql/*.sql), and
  runtime roles may not create temporary objects, so a caller's temp `api_keys` or `balances`
  can never stand in for the ledger's.
- The relay and the close get roles of their own (`arus_relay`, `arus_close`); the API's role
  (`arus_app`) loses the outbox, the close and prune (admin/grants.py is the table).
- The close is computed inside the database (`arus_close_day`): `arus_store_close`, which stored
  a report its caller passed in, is dropped.
- A relay marks published only the events its own transaction claimed.
- The close lock is a row of `ledger_close_locks` that only the owner may lock, not an
  advisory lock whose key any login can compute and take.

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
    op.execute("""
        CREATE TABLE ledger_close_locks (ledger_id uuid PRIMARY KEY REFERENCES ledgers (id));
        INSERT INTO ledger_close_locks (ledger_id) SELECT id FROM ledgers;
    """)
    engine_sql.apply(op.execute)
    op.execute("""
        CREATE TRIGGER ledgers_close_lock AFTER INSERT ON ledgers
            FOR EACH ROW EXECUTE FUNCTION arus_add_close_lock();
    """)
    grants.apply(op.execute)


def downgrade() -> None:
    raise NotImplementedError("the ledger moves forward only")
