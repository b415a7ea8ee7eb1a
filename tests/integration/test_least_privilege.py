"""The application's role owns nothing and holds only its grants (SPEC §3.4, migration 0005).

Every server and function of this suite already connects as `arus_test_app`, a member of
`arus_app`; here that role tries what an attacker holding its connection would."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from arus.platform.config import Settings
from arus.platform.db import get_engine

FORBIDDEN = [
    "ALTER TABLE entries DISABLE TRIGGER entries_append_only",
    "ALTER TABLE postings DISABLE TRIGGER USER",
    "DROP TRIGGER entries_append_only ON entries",
    "UPDATE entries SET description = 'rewritten'",
    "DELETE FROM postings",
    "INSERT INTO postings (entry_id, ledger_id, account_id, position, direction, amount, "
    "currency, balance_after, account_version, created_at) SELECT entry_id, ledger_id, "
    "account_id, 99, direction, amount, currency, balance_after, account_version, created_at "
    "FROM postings LIMIT 1",
    "TRUNCATE entries",
    "UPDATE balances SET balance = balance + 1",
    "UPDATE balances SET pending_debits = 0",
    "SELECT * FROM api_keys",
    "UPDATE api_keys SET revoked_at = NULL",
    "INSERT INTO api_keys (id, ledger_id, scope, secret_hash) SELECT '0000000000000000', "
    "ledger_id, 'write', secret_hash FROM api_keys LIMIT 1",
    "SELECT * FROM idempotency_keys",
    "UPDATE outbox_events SET envelope = '{}'::json",
    "DELETE FROM outbox_events",
    "UPDATE outbox_events SET published_at = NULL",
    "DELETE FROM holds",
    "INSERT INTO daily_closes (ledger_id, close_date, report) SELECT id, '1999-01-01', '{}' "
    "FROM ledgers LIMIT 1",
    "SET session_replication_role = replica",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "CREATE TABLE stash (x int)",
    "CREATE FUNCTION arus_evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "SELECT arus_write_entries(gen_random_uuid(), '{}'::arus_item[], true, '{}'::json[])",
    "SELECT * FROM arus_judge('{}', '{}', 1, 1, NULL, now())",
    "SELECT arus_release_holds(ARRAY[gen_random_uuid()])",
    "ALTER ROLE arus_test_app SUPERUSER",
    "CREATE ROLE intruder LOGIN",
]


@pytest.fixture(scope="module")
def app_engine(database_url: str) -> sa.Engine:
    return get_engine(Settings(database_url=database_url, db_pool_size=2), autocommit=True)


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_the_application_role_cannot(app_engine, api, ledger, statement):
    # Some rows in every table, so a statement that were allowed would change something.
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    assert api.transfer(ledger, "cash", "equity", 5).status_code == 201
    with app_engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.exec_driver_sql(statement)
    fields = refused.value.orig.args[0]
    assert fields["C"] in ("42501", "42809"), (statement, fields)  # insufficient_privilege


def test_the_application_role_is_a_plain_login_that_owns_nothing(app_engine):
    with app_engine.connect() as conn:
        role = conn.execute(sa.text(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
            "FROM pg_roles WHERE rolname = current_user")).one()  # fmt: skip
        owned = conn.execute(sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
        )).scalar_one()  # fmt: skip
        member_of = conn.execute(sa.text(
            "SELECT array_agg(r.rolname ORDER BY r.rolname) FROM pg_auth_members m "
            "JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )).scalar_one()  # fmt: skip
    assert tuple(role) == (False, False, False, False, False)
    assert owned == 0 and member_of == ["arus_app"]


def test_the_application_role_runs_the_ledger(app_engine, ledger):
    """And what it may do, it does through the engine: post, read and verify run as this role
    across the whole suite (the relay and the close as their own, test_definer_boundary.py);
    here one call as a witness."""
    from arus.ledger import gateway
    from arus.ledger.commands import parse_new_entry

    with app_engine.connect() as conn:
        for code in ("wallet", "shop"):
            create = sa.text(
                "SELECT arus_create_account(:key_id, :secret_hash, NULL, NULL, :code, :code, "
                "'asset', 'USD', true, '{}'::jsonb)")  # fmt: skip
            conn.execute(create, {**ledger.credentials.as_params(), "code": code})
    entry = parse_new_entry({"postings": [
        {"account": "wallet", "direction": "debit", "amount": 3},
        {"account": "shop", "direction": "credit", "amount": 3}]})  # fmt: skip
    result = gateway.post_entry(app_engine, credentials=ledger.credentials, entry=entry,
                                idempotency_key=uuid.uuid4().hex, request_body={},
                                operation="POST /v1/entries")  # fmt: skip
    assert result.status == 201


def test_a_user_made_as_the_cloud_sql_api_makes_one_is_stripped_to_arus_app(owner_database_url):
    """Terraform creates the application's user through the Cloud SQL Admin API, which makes it
    a member of cloudsqlsuperuser with CREATEDB and CREATEROLE; `arus app-user` takes that away
    (here a stand-in role with those attributes plays cloudsqlsuperuser)."""
    from arus.admin import roles

    owner = get_engine(Settings(database_url=owner_database_url))
    name, standin = f"arus_api_user_{uuid.uuid4().hex[:8]}", f"api_super_{uuid.uuid4().hex[:8]}"
    with owner.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {standin} CREATEDB CREATEROLE")
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE IN ROLE {standin}")
        assert roles.excess_privileges(conn, name) == [
            f"membership in {standin}", "CREATEDB", "CREATEROLE"]  # fmt: skip
    assert roles.ensure_app_user(owner, name, "pw-" + uuid.uuid4().hex) is False  # it existed
    with owner.connect() as conn:
        assert roles.excess_privileges(conn, name) == []
        assert roles.memberships(conn, name) == ["arus_app"]


def test_app_user_refuses_to_bless_a_user_it_cannot_strip(owner_database_url, capsys, monkeypatch):
    """SUPERUSER cannot be taken away by a Cloud SQL owner, so it is not tried: the command
    fails, naming it, instead of leaving the ledger served by a superuser."""
    from arus.admin import roles
    from arus.tools import cli

    owner = get_engine(Settings(database_url=owner_database_url))
    name = f"arus_super_{uuid.uuid4().hex[:8]}"
    with owner.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN SUPERUSER")
    with pytest.raises(roles.PrivilegedUser, match="SUPERUSER"):
        roles.ensure_app_user(owner, name)
    monkeypatch.setenv("ARUS_DATABASE_URL", owner_database_url)
    assert cli.main(["app-user", name]) == 2
    assert f"arus: {name} still has SUPERUSER" in capsys.readouterr().err
