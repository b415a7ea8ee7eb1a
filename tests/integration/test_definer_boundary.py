"""The privilege boundary, tried as a hostile runtime login would (SPEC §3.6, issue 16).

Every function of the engine has a decision in `arus.admin.grants` (who may execute it), and
the database holds exactly those grants; each runtime login is refused every function and
write its job does not need; a temp table can stand in for no ledger table inside a definer
function, even for a login that (against the deployment's rules) may create one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import pytest
import sqlalchemy as sa
from arus.admin import grants, roles
from arus.platform.config import Settings
from arus.platform.db import get_engine

from tests.conftest import APP_USER, JOB_USERS

LOGINS = {"api": APP_USER, **JOB_USERS}

_ENGINE_FUNCTIONS = sa.text("""
    SELECT replace(p.oid::regprocedure::text, ',', ', ') AS signature, p.prosecdef AS definer,
           array_to_string(p.proconfig, ',') AS config
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.proname LIKE 'arus\\_%'
    ORDER BY 1
""")


def _login_engine(owner_url: str, user: str, *, autocommit: bool = True) -> sa.Engine:
    url = sa.engine.make_url(owner_url).set(username=user).render_as_string(hide_password=False)
    return get_engine(Settings(database_url=url, db_pool_size=1), autocommit=autocommit)


@pytest.fixture(scope="module")
def functions(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(_ENGINE_FUNCTIONS))


def test_every_engine_function_has_a_decision(functions):
    """A function added to the engine without a line in grants.FUNCTIONS fails here."""
    in_database = {f.signature for f in functions}
    assert in_database - set(grants.FUNCTIONS) == set(), "functions with no grant decision"
    assert set(grants.FUNCTIONS) - in_database == set(), "decisions for functions that are gone"


def test_every_definer_function_pins_a_search_path_that_ends_with_pg_temp(functions):
    definers = [f for f in functions if f.definer]
    assert len(definers) >= 12
    for function in definers:
        assert function.config == "search_path=pg_catalog, public, pg_temp", function


@pytest.mark.parametrize("role", sorted(grants.ROLES))
def test_each_role_may_execute_exactly_what_the_table_grants(engine, functions, role):
    with engine.connect() as conn:
        for function in functions:
            may = conn.execute(
                sa.text("SELECT has_function_privilege(:login, :f, 'EXECUTE')"),
                {"login": LOGINS[role], "f": function.signature},
            ).scalar_one()
            assert may == (role in grants.FUNCTIONS[function.signature]), (role, function)


FORBIDDEN_CALLS = [
    (role, signature)
    for signature, allowed in grants.FUNCTIONS.items()
    for role in sorted(grants.ROLES)
    if role not in allowed and not signature.endswith("()")  # triggers: no one calls them
]


def _null_call(signature: str) -> str:
    """`name(NULL::t1, NULL::t2, ...)` for a signature as pg_proc prints it."""
    name, args = signature.rstrip(")").split("(", 1)
    return f"SELECT {name}({', '.join(f'NULL::{a}' for a in args.split(', ') if a)})"


@pytest.mark.parametrize(("role", "signature"), FORBIDDEN_CALLS)
def test_a_login_is_refused_every_function_its_job_does_not_need(
    owner_database_url, role, signature
):
    with (
        _login_engine(owner_database_url, LOGINS[role]).connect() as conn,
        pytest.raises(sa.exc.DBAPIError) as refused,
    ):
        conn.exec_driver_sql(_null_call(signature))
    assert refused.value.orig.args[0]["C"] == "42501", (role, signature)


# What every runtime login is refused, beyond functions: temporary objects, large objects,
# writes to any table, and reads of the secrets.
EVERY_LOGIN_REFUSED = [
    "CREATE TEMP TABLE api_keys (id text)",
    "CREATE TEMPORARY TABLE balances (account_id uuid)",
    "SELECT lo_create(0)",
    "SELECT lo_from_bytea(0, '\\x00'::bytea)",
    "INSERT INTO daily_closes (ledger_id, close_date, report) SELECT id, '2999-12-31', '{}' "
    "FROM ledgers LIMIT 1",
    "UPDATE outbox_events SET published_at = clock_timestamp()",
    "DELETE FROM outbox_events",
    "SELECT * FROM api_keys",
    "SELECT * FROM idempotency_keys",
]
# And by role: the journal is the API's and the close's to read, not the relay's.
ROLE_REFUSED = {
    "relay": ["SELECT * FROM entries", "SELECT * FROM balances", "SELECT * FROM accounts"],
    "close": ["SELECT * FROM outbox_events", "SELECT * FROM balances", "SELECT * FROM entries"],
    "api": [],
}


@pytest.mark.parametrize(
    ("role", "statement"),
    [(r, s) for r in sorted(grants.ROLES) for s in EVERY_LOGIN_REFUSED + ROLE_REFUSED[r]],
)
def test_a_login_is_refused(owner_database_url, api, ledger, role, statement):
    api.account(ledger, "cash", allow_negative=True)  # a row, so an allowed write would write
    with (
        _login_engine(owner_database_url, LOGINS[role]).connect() as conn,
        pytest.raises(sa.exc.DBAPIError) as refused,
    ):
        conn.exec_driver_sql(statement)
    assert refused.value.orig.args[0]["C"] == "42501", (role, statement)


@pytest.mark.parametrize("role", sorted(grants.ROLES))
def test_each_login_is_a_member_of_its_role_only_and_holds_nothing_else(engine, role):
    with engine.connect() as conn:
        assert roles.memberships(conn, LOGINS[role]) == [grants.ROLES[role]]
        assert roles.excess_privileges(conn, LOGINS[role], grants.ROLES[role]) == []
        assert roles.large_object_functions(conn, LOGINS[role]) == []


def test_a_relay_marks_published_only_what_its_own_transaction_claimed(
    owner_database_url, api, ledger, engine
):
    api.account(ledger, "cash")  # an account.created event, unpublished
    with engine.connect() as conn:
        ids = list(conn.execute(sa.text(
            "SELECT id FROM outbox_events WHERE ledger_id = :l AND published_at IS NULL"),
            {"l": ledger.ledger_id}).scalars())  # fmt: skip
    assert ids
    relay = _login_engine(owner_database_url, JOB_USERS["relay"], autocommit=False)
    mark = sa.text("SELECT arus_outbox_published(CAST(:ids AS bigint[]))")
    with relay.connect() as conn, conn.begin():
        assert conn.execute(mark, {"ids": ids}).scalar_one() == 0, "never claimed: not marked"
    with relay.connect() as conn, conn.begin():
        claimed = [
            row.id for row in conn.execute(sa.text("SELECT id FROM arus_outbox_claim(10000)"))
        ]
        assert set(ids) <= set(claimed)
        assert conn.execute(mark, {"ids": ids}).scalar_one() == len(ids)
    with engine.connect() as conn:
        left = conn.execute(sa.text(
            "SELECT count(*) FROM outbox_events WHERE id = ANY (CAST(:ids AS bigint[])) "
            "AND published_at IS NULL"), {"ids": ids}).scalar_one()  # fmt: skip
    assert left == 0


def test_the_close_refuses_forged_days(owner_database_url, ledger):
    close = _login_engine(owner_database_url, JOB_USERS["close"])
    for day, message in (("2999-12-31", "can be closed from"),
                         ("2000-01-01", "before the ledger existed")):  # fmt: skip
        with close.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=message):
            conn.execute(sa.text("SELECT arus_close_day(:l, CAST(:d AS date))"),
                         {"l": ledger.ledger_id, "d": day})  # fmt: skip


# --- Temp tables inside definer functions ------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(owner_database_url, engine) -> sa.Engine:
    """A member of arus_app that may create temporary tables: a deployment where the REVOKE
    did not hold. The definer functions must not trust it even then."""
    name = f"arus_hostile_{uuid.uuid4().hex[:8]}"
    roles.ensure_app_user(engine, name)
    with engine.begin() as conn:
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.exec_driver_sql(f'GRANT TEMPORARY ON DATABASE "{database}" TO {name}')
    return _login_engine(owner_database_url, name, autocommit=False)


FORGED_KEY_ID = "0123456789abcdef"
FORGED_HASH = hashlib.sha256(b"forged").digest()


def _plant_key(conn: sa.Connection, victim_ledger: uuid.UUID) -> None:
    """A temp `api_keys` with a made-up write key for the victim's ledger."""
    conn.exec_driver_sql(
        "CREATE TEMP TABLE api_keys (id text, ledger_id uuid, scope text, secret_hash bytea, "
        "revoked_at timestamptz)"
    )
    conn.execute(
        sa.text("INSERT INTO api_keys VALUES (:id, :l, 'write', :h, NULL)"),
        {"id": FORGED_KEY_ID, "l": victim_ledger, "h": FORGED_HASH},
    )


def _plant_balance(conn: sa.Connection, wallet_id: uuid.UUID) -> None:
    """A temp `balances` with the wallet as the ledger has it, but holding 1e9."""
    conn.exec_driver_sql("CREATE TEMP TABLE balances (LIKE public.balances)")
    conn.execute(
        sa.text("INSERT INTO balances SELECT * FROM public.balances WHERE account_id = :a"),
        {"a": wallet_id},
    )
    conn.exec_driver_sql("UPDATE balances SET balance = 1000000000")


def _key_taking_definers(functions) -> list[str]:
    return [f.signature for f in functions if f.definer and "api" in grants.FUNCTIONS[f.signature]]


def test_no_definer_function_authorises_a_key_from_a_temp_table(hostile, functions, api, ledger):
    definers = _key_taking_definers(functions)
    assert len(definers) >= 7
    for signature in definers:
        # Every API definer function authorises first: a (text, bytea) key pair leads.
        assert signature.split("(", 1)[1].startswith("text, bytea"), signature
        name, args = signature.rstrip(")").split("(", 1)
        rest = args.split(", ")[2:]
        call = (f"SELECT {name}(:key_id, :hash"
                + "".join(f", NULL::{a}" for a in rest) + ")")  # fmt: skip
        if name == "arus_authorize":
            call = "SELECT arus_authorize(:key_id, :hash, 'write')"
        with hostile.connect() as conn:  # each attempt rolls back with its temp tables
            _plant_key(conn, ledger.ledger_id)
            with pytest.raises(sa.exc.DBAPIError) as refused:
                conn.execute(sa.text(call), {"key_id": FORGED_KEY_ID, "hash": FORGED_HASH})
            conn.rollback()
            fields = refused.value.orig.args[0]
            assert fields.get("H") == "unauthenticated", (signature, fields)


def test_no_definer_function_sees_a_balance_from_a_temp_table(hostile, api, ledger, engine):
    api.account(ledger, "wallet")  # may not go negative
    api.account(ledger, "shop", "revenue")
    with engine.connect() as conn:
        wallet = conn.execute(sa.text(
            "SELECT id FROM accounts WHERE ledger_id = :l AND code = 'wallet'"),
            {"l": ledger.ledger_id}).scalar_one()  # fmt: skip
    lines = json.dumps([{"account_code": "wallet", "direction": "credit", "amount": 100},
                        {"account_code": "shop", "direction": "debit", "amount": 100}])  # fmt: skip
    key_id, secret_hash = ledger.credentials.as_params().values()
    calls = {
        "posted": sa.text(
            "SELECT arus_post_entry(:k, :h, :key, 'f', 'x', NULL, '{}'::jsonb, "
            "CAST(:lines AS jsonb), false, NULL)"),
        "pending": sa.text(
            "SELECT arus_post_entry(:k, :h, :key, 'f', 'x', NULL, '{}'::jsonb, "
            "CAST(:lines AS jsonb), true, NULL)"),
        "batch": sa.text(
            "SELECT arus_post_batch(:k, :h, jsonb_build_array(jsonb_build_object("
            "'key', CAST(:key AS text), 'fingerprint', 'f', 'lines', CAST(:lines AS jsonb))), "
            "true)"),
    }  # fmt: skip
    for kind, call in calls.items():
        with hostile.connect() as conn:
            _plant_balance(conn, wallet)
            params = {"k": key_id, "h": secret_hash, "key": uuid.uuid4().hex, "lines": lines}
            with pytest.raises(sa.exc.DBAPIError) as refused:
                conn.execute(call, params)
            conn.rollback()
            assert refused.value.orig.args[0].get("H") == "insufficient_funds", kind
    with engine.connect() as conn:
        balance = conn.execute(sa.text("SELECT balance FROM balances WHERE account_id = :a"),
                               {"a": wallet}).scalar_one()  # fmt: skip
    assert balance == 0


# --- Arguments a hostile caller crafts (the second review of the definer functions) -------------


def test_a_null_secret_hash_authorises_no_key(hostile, functions, other_ledger):
    """`secret_hash <> NULL` is NULL, not true: the key check must not read it as a match."""
    from arus.ledger.access import parse_credentials

    key_id = parse_credentials(f"Bearer {other_ledger.write_key}").key_id
    for signature in _key_taking_definers(functions):
        name, args = signature.rstrip(")").split("(", 1)
        call = (
            f"SELECT {name}(:key_id, NULL"
            + "".join(f", NULL::{a}" for a in args.split(", ")[2:])
            + ")"
        )
        if name == "arus_authorize":
            call = "SELECT arus_authorize(:key_id, NULL, 'write')"
        with hostile.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
            conn.execute(sa.text(call), {"key_id": key_id})
        assert refused.value.orig.args[0].get("H") == "unauthenticated", signature


@pytest.mark.parametrize("field", ["posts", "reverses"])
def test_a_batch_item_cannot_post_or_reverse_another_entry(api, ledger, posting_engine, field):
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    target = api.transfer(ledger, "cash", "equity", 7).get_json()["id"]
    item = {"key": uuid.uuid4().hex, "fingerprint": "f", field: target, "lines": [
        {"account_code": "equity", "direction": "debit", "amount": 7},
        {"account_code": "cash", "direction": "credit", "amount": 7}]}  # fmt: skip
    with posting_engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.execute(
            sa.text("SELECT arus_post_batch(:key_id, :secret_hash, CAST(:items AS jsonb), true)"),
            {**ledger.credentials.as_params(), "items": json.dumps([item])},
        )
    assert refused.value.orig.args[0].get("H") == "validation_error"


_LINES = [
    {"account_code": "equity", "direction": "debit", "amount": 7},
    {"account_code": "cash", "direction": "credit", "amount": 7},
]
_ERROR = {"code": "validation_error", "status": 422, "message": "refused by the commands"}


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([{"key": "dup", "fingerprint": "f", "lines": _LINES}] * 2, id="one key twice"),
        pytest.param([{"fingerprint": "f", "lines": _LINES}], id="no key"),
        pytest.param([{"key": "k1", "fingerprint": "f", "lines": _LINES},
                      {"key": "k1", "error": _ERROR, "lines": []}], id="an error item with a key"),
    ],
)  # fmt: skip
def test_a_batch_claims_one_key_per_item(api, ledger, posting_engine, engine, items):
    """Claims are matched back to items by key: two items under one key, or an item the commands
    refused sharing a new item's key, would be written under a single claim (or none)."""
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    with posting_engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.execute(
            sa.text("SELECT arus_post_batch(:key_id, :secret_hash, CAST(:items AS jsonb), false)"),
            {**ledger.credentials.as_params(), "items": json.dumps(items)},
        )
    assert refused.value.orig.args[0].get("H") == "validation_error"
    with engine.connect() as conn:
        written = conn.execute(sa.text("SELECT count(*) FROM entries WHERE ledger_id = :l"),
                               {"l": ledger.ledger_id}).scalar_one()  # fmt: skip
    assert written == 0


def test_writes_refuse_a_snapshot_older_than_the_statement(api, ledger, owner_database_url):
    """At REPEATABLE READ a caller would have the closed-day and expiry judgements made on a
    snapshot from before the close or the sweep it races."""
    api.account(ledger, "cash", allow_negative=True)
    for role, call in (
        ("api", "SELECT arus_authorize(:key_id, :secret_hash, 'write')"),
        ("close", "SELECT arus_close_day(:ledger, CAST('2000-01-01' AS date))"),
        ("relay", "SELECT arus_expire_holds(10)"),
    ):
        with _login_engine(owner_database_url, LOGINS[role], autocommit=False).connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            params = {**ledger.credentials.as_params(), "ledger": ledger.ledger_id}
            with pytest.raises(sa.exc.DBAPIError, match="READ COMMITTED"):
                conn.execute(sa.text(call), params)


def test_bounds_hold_with_asserts_turned_off(api, ledger, owner_database_url, posting_engine):
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    item = {"fingerprint": "f", "lines": [
        {"account_code": "cash", "direction": "debit", "amount": 1},
        {"account_code": "equity", "direction": "credit", "amount": 1}]}  # fmt: skip
    items = [{**item, "key": f"k{i}"} for i in range(1001)]
    with posting_engine.connect() as conn:
        conn.exec_driver_sql("SET plpgsql.check_asserts = off")
        with pytest.raises(sa.exc.DBAPIError, match=r"1\.\.1000 entries"):
            conn.execute(
                sa.text("SELECT arus_post_batch(:key_id, :secret_hash, CAST(:items AS jsonb), "
                        "true)"),
                {**ledger.credentials.as_params(), "items": json.dumps(items)},
            )  # fmt: skip
    relay = _login_engine(owner_database_url, JOB_USERS["relay"])
    with relay.connect() as conn:
        conn.exec_driver_sql("SET plpgsql.check_asserts = off")
        with pytest.raises(sa.exc.DBAPIError, match=r"1\.\.10000"):
            conn.execute(sa.text("SELECT arus_expire_holds(NULL)"))


def test_the_close_refuses_a_null_or_infinite_day(owner_database_url, ledger):
    close = _login_engine(owner_database_url, JOB_USERS["close"])
    for day in (None, "infinity", "-infinity"):
        with close.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
            conn.execute(sa.text("SELECT arus_close_day(:l, CAST(:d AS date))"),
                         {"l": ledger.ledger_id, "d": day})  # fmt: skip
        assert refused.value.orig.args[0].get("H") == "validation_error", day


def test_no_login_can_take_a_lock_the_engine_waits_for(api, ledger, owner_database_url, engine):
    """The close lock and the reversal lock were advisory locks whose keys any login could
    compute (ledger and entry ids are readable) and take first, holding back another tenant's
    close, back-dated entries and reversals. Now they are rows only the owner may lock."""
    from arus.jobs import close

    from tests.support.ledgers import age_ledger

    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    entry = api.transfer(ledger, "cash", "equity", 3).get_json()["id"]
    age_ledger(engine, ledger.ledger_id, days=2)
    relay = _login_engine(owner_database_url, JOB_USERS["relay"], autocommit=False)
    with relay.connect() as squatter:
        for key in (f"arus-close:{ledger.ledger_id}", f"arus-reverse:{entry}"):
            squatter.execute(sa.text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"),
                             {"k": key})  # fmt: skip
        with pytest.raises(sa.exc.DBAPIError) as refused:
            squatter.execute(sa.text("SELECT 1 FROM ledger_close_locks FOR SHARE"))
        assert refused.value.orig.args[0]["C"] == "42501"
        squatter.rollback()
        yesterday = dt.date.today() - dt.timedelta(days=1)
        body = {
            "effective_date": (yesterday - dt.timedelta(days=1)).isoformat(),
            "postings": [
                {"account": "cash", "direction": "debit", "amount": 1},
                {"account": "equity", "direction": "credit", "amount": 1},
            ],
        }
        backdated = api.post(
            "/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex, json=body
        )
        assert backdated.status_code == 201, backdated.get_json()
        assert close.close_ledger(engine, ledger.ledger_id, yesterday)["ok"]
        reversal = api.post(f"/v1/entries/{entry}/reverse", key=ledger.write_key,
                            idempotency_key=uuid.uuid4().hex, json={})  # fmt: skip
        assert reversal.status_code == 201, reversal.get_json()
        squatter.exec_driver_sql("SELECT pg_advisory_unlock_all()")
