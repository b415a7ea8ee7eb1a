"""Least privilege (SPEC §3.4): the application's role owns nothing and holds only its grants.

`arus_app` (NOLOGIN) is the role the functions, `arus serve`, the relay and the close connect
through: a login user is made a member of it (`arus app-user`). It may

- execute the engine's public functions (SECURITY DEFINER, pinned search_path: they write as
  the owner) and the relay's and close's (`ledger/sql/operations.sql`), and the renderers;
- read the tables the reads, the close and verify read (never `api_keys` or
  `idempotency_keys`: the key check and the claims happen inside the engine's functions).

It may not write any table, so it can neither rewrite the journal (no UPDATE or DELETE, no
ALTER TABLE to disable a trigger: only the owner may), nor move a balance, touch a key or an
outbox row except through those functions. Everything else runs as the owner that runs this
migration: migrations and administration (ledgers, keys).

A later migration that creates a function or a table the application needs grants it there.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from arus.ledger import engine_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "arus_app"

# What the application executes: the engine's entry points, the relay's and close's writes,
# and the renderers its reads call inside their statements. Only functions the engine files
# still define (this migration applies them as they are now): migration 0006 dropped
# arus_store_close and moved the relay's and the close's functions to roles of their own.
APP_FUNCTIONS = (
    "arus_authorize(text, bytea, text)",
    "arus_post_entry(text, bytea, text, text, text, date, jsonb, jsonb, boolean, timestamptz)",
    "arus_post_batch(text, bytea, jsonb, boolean)",
    "arus_reverse_entry(text, bytea, text, text, uuid, text, date)",
    "arus_create_account(text, bytea, text, text, text, text, text, text, boolean, jsonb)",
    "arus_post_pending(text, bytea, text, text, uuid, text, date)",
    "arus_void_pending(text, bytea, text, text, uuid)",
    "arus_expire_holds(int)",
    "arus_outbox_claim(int)",
    "arus_outbox_published(bigint[])",
    "arus_prune(int, int)",
    "arus_close_lock(uuid, boolean)",
    "arus_timestamp(timestamptz)",
    "arus_account_json(uuid)",
    "arus_entry_json(uuid)",
)
# What the application reads with plain SELECTs (reads, the close's snapshot, verify).
APP_READS = (
    "ledgers", "accounts", "balances", "entries", "postings", "pending_postings",
    "pending_outcomes", "holds", "daily_closes", "balance_snapshots", "outbox_events",
    "alembic_version",
)  # fmt: skip


def upgrade() -> None:
    engine_sql.apply(op.execute)  # the definer functions and operations.sql
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
        END $$;
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;
        REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        GRANT USAGE ON SCHEMA public TO {APP_ROLE};
        GRANT SELECT ON {", ".join(APP_READS)} TO {APP_ROLE};
        GRANT EXECUTE ON FUNCTION {", ".join(APP_FUNCTIONS)} TO {APP_ROLE};
    """)


def downgrade() -> None:
    raise NotImplementedError("the ledger moves forward only")
