"""What each runtime role may do (SPEC §3.6): the one table of decisions, applied by migrations.

Three NOLOGIN roles own nothing; a login is made a member of exactly one (`arus app-user`):
the API's (`arus_app`: post, reverse, hold, read), the relay's (`arus_relay`: claim and mark
published its own claimed events, sweep expired holds) and the close's (`arus_close`: close a
day, computed inside the database). Everything else (migrations, ledgers, keys, prune) is the
owner's. Every function the engine defines is listed here with the roles that may execute it;
`tests/integration/test_least_privilege.py` fails on a function in the database that has no
decision here, so a new definer function is never granted by accident nor left undecided.
"""

from __future__ import annotations

from collections.abc import Callable

ROLES = {"api": "arus_app", "relay": "arus_relay", "close": "arus_close"}

API, RELAY, CLOSE = "api", "relay", "close"
OWNER_ONLY: tuple[str, ...] = ()

# Every function of the engine (ledger/sql/*.sql), by signature: who may execute it.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    # SECURITY DEFINER: the entry points.
    "arus_authorize(text, bytea, text)": (API,),
    "arus_post_entry(text, bytea, text, text, text, date, jsonb, jsonb, boolean, "
    "timestamp with time zone)": (API,),
    "arus_post_batch(text, bytea, jsonb, boolean)": (API,),
    "arus_reverse_entry(text, bytea, text, text, uuid, text, date)": (API,),
    "arus_create_account(text, bytea, text, text, text, text, text, text, boolean, jsonb)": (API,),
    "arus_post_pending(text, bytea, text, text, uuid, text, date)": (API,),
    "arus_void_pending(text, bytea, text, text, uuid)": (API,),
    "arus_outbox_claim(integer)": (RELAY,),
    "arus_outbox_published(bigint[])": (RELAY,),
    "arus_expire_holds(integer)": (RELAY,),
    "arus_close_day(uuid, date)": (CLOSE,),
    "arus_prune(integer, integer)": OWNER_ONLY,
    # SECURITY INVOKER renderers the API's reads call inside their statements.
    "arus_timestamp(timestamp with time zone)": (API,),
    "arus_account_json(uuid)": (API,),
    "arus_entry_json(uuid)": (API,),
    # SECURITY INVOKER steps, run only inside the entry points (as the owner).
    "arus_reject_change()": OWNER_ONLY,
    "arus_require_read_committed()": OWNER_ONLY,
    "arus_check_entry_balanced()": OWNER_ONLY,
    # Integrity (ledger/sql/integrity.sql): trigger functions and the refusal they raise.
    "arus_refuse_row(text, text, text)": OWNER_ONLY,
    "arus_check_new_entries()": OWNER_ONLY,
    "arus_check_new_lines()": OWNER_ONLY,
    "arus_check_entry_has_lines()": OWNER_ONLY,
    "arus_check_new_holds()": OWNER_ONLY,
    "arus_check_new_outcomes()": OWNER_ONLY,
    "arus_check_new_ledger_rows()": OWNER_ONLY,
    "arus_check_balances()": OWNER_ONLY,
    "arus_reject_removal()": OWNER_ONLY,
    "arus_close_lock(uuid, boolean)": OWNER_ONLY,
    "arus_add_close_lock()": OWNER_ONLY,
    "arus_claim_idempotency_key(uuid, text, text)": OWNER_ONLY,
    "arus_enqueue_event(uuid, text, bigint, timestamp with time zone, json)": OWNER_ONLY,
    "arus_lines_ok(jsonb)": OWNER_ONLY,
    "arus_line_moves(arus_line[])": OWNER_ONLY,
    "arus_judge(arus_item[], arus_line[], integer, integer, date, timestamp with time zone)": (
        OWNER_ONLY
    ),
    "arus_claim_batch(uuid, jsonb)": OWNER_ONLY,
    "arus_write_entries(uuid, arus_item[], boolean, json[])": OWNER_ONLY,
    "arus_lock_hold_accounts(uuid, uuid[])": OWNER_ONLY,
    "arus_claim_outcome(uuid, uuid, text)": OWNER_ONLY,
    "arus_release_holds(uuid[])": OWNER_ONLY,
    "arus_close_snapshot(uuid, date)": OWNER_ONLY,
    # SECURITY INVOKER and read-only: `arus verify` recomputes seals with whatever login reads
    # the journal (the API's, in the test suite's release gate).
    "arus_seal_field(text)": (API,),
    "arus_seal_instant(timestamp with time zone)": (API,),
    "arus_journal_units(uuid, bigint, bigint, timestamp with time zone, "
    "timestamp with time zone)": (API,),
    "arus_journal_seal(uuid, text, bigint, bigint, timestamp with time zone, "
    "timestamp with time zone)": (API,),
    "arus_current_drift(uuid)": OWNER_ONLY,
}

# The tables each role reads with plain SELECTs; none may write any table.
READS: dict[str, tuple[str, ...]] = {
    API: (
        "ledgers", "accounts", "balances", "entries", "postings", "pending_postings",
        "pending_outcomes", "holds", "daily_closes", "balance_snapshots", "outbox_events",
        "alembic_version",
    ),
    RELAY: ("outbox_events",),  # the age of the oldest unpublished event
    CLOSE: ("ledgers",),
}  # fmt: skip

# Large objects are a way to store data the ledger knows nothing of; no runtime role needs one.
LARGE_OBJECT_FUNCTIONS = (
    "lo_creat(integer)", "lo_create(oid)", "lo_from_bytea(oid, bytea)", "lo_import(text)",
    "lo_import(text, oid)",
)  # fmt: skip


def apply(execute: Callable[[str], object]) -> None:
    """Bring every role's privileges to this table: create the roles, take everything from
    PUBLIC and from them, then grant exactly what is listed. Idempotent; run as the owner."""
    roles = ", ".join(ROLES.values())
    for role in ROLES.values():
        execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN;
                END IF;
            END $$""")
    execute(f"""
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, {roles};
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, {roles};
        REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC, {roles};
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        GRANT USAGE ON SCHEMA public TO {roles};
        DO $$ BEGIN
            EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, {roles}',
                           current_database());
        END $$""")
    for signature, allowed in FUNCTIONS.items():
        if allowed:
            grantees = ", ".join(ROLES[r] for r in allowed)
            execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {grantees}")
    for role, tables in READS.items():
        if tables:
            execute(f"GRANT SELECT ON {', '.join(tables)} TO {ROLES[role]}")
    # Only a superuser may revoke what PUBLIC holds on pg_catalog's functions: elsewhere (Cloud
    # SQL) this is a warning, and `arus app-user` reports a login that can still use them.
    execute(f"""
        DO $$ BEGIN
            REVOKE EXECUTE ON FUNCTION {", ".join(LARGE_OBJECT_FUNCTIONS)} FROM PUBLIC;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'large objects stay available to PUBLIC: only a superuser may revoke';
        END $$""")
