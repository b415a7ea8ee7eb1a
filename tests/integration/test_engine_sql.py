"""The engine in the database is the engine in arus/ledger/sql: files and schema never drift."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from arus import errors
from arus.ledger import engine_sql


def test_database_functions_equal_the_engine_files(engine: sa.Engine) -> None:
    """Apply the files into a scratch schema and compare every arus_* function with public's."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.exec_driver_sql("CREATE SCHEMA arus_engine_check")
        conn.exec_driver_sql("SET LOCAL search_path = arus_engine_check, public")
        engine_sql.apply(conn.exec_driver_sql)
        normalize = sa.text(
            "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', "
            "md5(replace(pg_get_functiondef(p.oid), n.nspname || '.', '')) "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :schema AND p.proname LIKE 'arus\\_%'"
        )
        files = dict(conn.execute(normalize, {"schema": "arus_engine_check"}).all())
        database = dict(conn.execute(normalize, {"schema": "public"}).all())
        tx.rollback()
    assert len(files) >= 10, f"the engine files define {sorted(files)}"
    missing = sorted(set(files) - set(database))
    stale = sorted(set(database) - set(files))
    changed = sorted(sig for sig in set(files) & set(database) if files[sig] != database[sig])
    assert (missing, stale, changed) == ([], [], []), (
        f"database vs arus/ledger/sql: missing={missing} stale={stale} changed={changed}; "
        "add a migration that applies the engine (arus.ledger.engine_sql.apply)"
    )


def test_engine_files_hold_only_replaceable_functions() -> None:
    """A file is re-applied by every migration that changes the engine: nothing but functions."""
    for name in engine_sql.ENGINE_FILES:
        text = (engine_sql.SQL_DIR / name).read_text()
        statements = [
            line for line in text.splitlines() if line and not line.startswith((" ", "--", "$$"))
        ]
        heads = [s for s in statements if s.split()[0].isupper() and s.startswith("CREATE")]
        assert heads and all(s.startswith("CREATE OR REPLACE FUNCTION") for s in heads), name
        assert "CREATE TABLE" not in text and "DROP " not in text, name


def test_timestamps_are_rendered_inline_not_called(engine: sa.Engine, api, ledger) -> None:
    """arus_timestamp is a one-expression SQL function the planner inlines into each statement
    that renders an instant (issue 17: called, it cost a call and a plan each time, several
    times per entry). Declared more stable than its body (IMMUTABLE over to_char), it was not."""
    import json

    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    lines = [{"account_code": "cash", "direction": "debit", "amount": 1},
             {"account_code": "equity", "direction": "credit", "amount": 1}]  # fmt: skip
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL track_functions = 'all'")
        conn.execute(
            sa.text("SELECT arus_post_entry(:key_id, :secret_hash, 'inline', 'f', 'd', "
                    "current_date, NULL, CAST(:lines AS jsonb), false, NULL)"),
            {**ledger.credentials.as_params(), "lines": json.dumps(lines)},
        )  # fmt: skip
        called = dict(conn.execute(sa.text(
            "SELECT funcname, calls FROM pg_stat_xact_user_functions "
            "WHERE funcname IN ('arus_post_entry', 'arus_timestamp')")).all())  # fmt: skip
    assert called.get("arus_post_entry") == 1, called  # the counting works
    assert "arus_timestamp" not in called, called


def test_engine_calls_are_prepared_once_per_connection(app_settings, api, ledger) -> None:
    """The request path runs each engine call as a prepared statement (platform.db.run_prepared,
    issue 17): parsed and planned on a connection's first call, bound and executed after."""
    import dataclasses

    from arus.ledger import gateway
    from arus.ledger.commands import parse_new_entry
    from arus.platform.db import create_engine

    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    one = create_engine(dataclasses.replace(app_settings, db_pool_size=1, db_max_overflow=0),
                        autocommit=True)  # fmt: skip
    body = {"postings": [{"account": "cash", "direction": "debit", "amount": 1},
                         {"account": "equity", "direction": "credit", "amount": 1}]}  # fmt: skip
    try:
        for n in range(3):
            gateway.post_entry(one, credentials=ledger.credentials, entry=parse_new_entry(body),
                               idempotency_key=f"prepared-{n}", request_body=body,
                               operation="post_entry")  # fmt: skip
        api.account(ledger, "wallet")
        refused = {
            "postings": [
                {"account": "wallet", "direction": "credit", "amount": 5},
                {"account": "cash", "direction": "debit", "amount": 5},
            ]
        }
        with pytest.raises(errors.InsufficientFunds):  # a refusal keeps the statement
            gateway.post_entry(one, credentials=ledger.credentials,
                               entry=parse_new_entry(refused), idempotency_key="prepared-refused",
                               request_body=refused, operation="post_entry")  # fmt: skip
        with one.connect() as conn:  # the pool's one connection, the session that ran them
            prepared = conn.exec_driver_sql(
                "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT arus_post_entry(%'").scalars().all()  # fmt: skip
    finally:
        one.dispose()
    assert prepared == [4], prepared
