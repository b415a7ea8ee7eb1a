"""A populated v2 database migrates to head with every row kept, and its ledgers go on working
(issue 17: the new engine and schema as a migration, data preserved).

The database is tests/fixtures/v2_populated.sql.gz: two ledgers written through engine v2 at
migration 0006 (tests/fixtures/make_v2_fixture.py says how it was made and how to remake it; the
.json beside it names its keys and the rows acted on here). It is restored into a fresh database
on the test server, fingerprinted table by table, migrated with `arus.admin.migrate.upgrade`, and
fingerprinted again. A migration that means to change how a column it keeps is stored must say
so here, next to the checksum it changes; none does yet.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from arus import errors
from arus.admin import grants, migrate
from arus.jobs import close
from arus.ledger import commands, gateway
from arus.ledger.access import parse_credentials
from arus.platform.config import Settings
from arus.platform.db import get_engine, sqlalchemy_url

from tests.conftest import APP_USER, JOB_USERS, _fresh_database
from tests.support.ledgers import REPO

FIXTURES = REPO / "tests" / "fixtures"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "v2_populated.json").read_text())
V2_REVISION = MANIFEST["revision"]


@dataclass(frozen=True)
class Migrated:
    owner_url: str
    columns: dict[str, list[str]]  # table -> its columns, as restored (v2)
    before: dict[str, tuple[int, str]]  # table -> (rows, checksum), as restored (v2)
    revision_before: str | None
    last_seq_before: dict[str, int]  # ledger name -> ledgers.last_ledger_seq

    def login(self, user: str, *, autocommit: bool = False) -> sa.Engine:
        url = sa.engine.make_url(self.owner_url).set(username=user)
        settings = Settings(database_url=url.render_as_string(hide_password=False))
        return get_engine(settings, autocommit=autocommit)


def _restore(url: str) -> None:
    """Replay the dump as the owner (it is plain SQL with INSERTs: one simple-protocol query,
    so one transaction), then what a plain dump cannot carry: v2 took TEMPORARY on the database
    from PUBLIC and the job roles (admin/grants.py), and database privileges are not dumped."""
    sql = gzip.decompress((FIXTURES / "v2_populated.sql.gz").read_bytes()).decode()
    plain, connect_args = sqlalchemy_url(url)
    engine = sa.create_engine(plain, connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.execute_simple(sql)  # type: ignore[union-attr]
            conn.commit()
        with engine.begin() as conn:
            database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            roles = ", ".join(grants.ROLES.values())
            conn.exec_driver_sql(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC, {roles}')
    finally:
        engine.dispose()


def _tables(conn: sa.Connection) -> dict[str, list[str]]:
    rows = conn.execute(sa.text(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position"
    )).all()  # fmt: skip
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _fingerprints(conn: sa.Connection, tables: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Per table: its row count and the md5 of its rows (those columns, as text, sorted)."""
    out = {}
    for table, columns in tables.items():
        if table == "alembic_version":  # the one row a migration must change
            continue
        cols = ", ".join(f'"{c}"' for c in columns)
        count, digest = conn.execute(sa.text(
            f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) "
            f'FROM (SELECT {cols} FROM public."{table}") r'
        )).one()  # fmt: skip
        out[table] = (int(count), str(digest))
    return out


def _last_seqs(conn: sa.Connection) -> dict[str, int]:
    return {
        name: conn.execute(
            sa.text("SELECT last_ledger_seq FROM ledgers WHERE id = :l"), {"l": ledger["id"]}
        ).scalar_one()
        for name, ledger in MANIFEST["ledgers"].items()
    }


@pytest.fixture(scope="module")
def migrated(owner_database_url: str) -> Iterator[Migrated]:
    url = _fresh_database(owner_database_url)
    _restore(url)
    owner = get_engine(Settings(database_url=url))
    revision_before = migrate.current_revision(owner)
    with owner.connect() as conn:
        tables = _tables(conn)
        before = _fingerprints(conn, tables)
        last_seq = _last_seqs(conn)
    migrate.upgrade(owner)
    yield Migrated(url, tables, before, revision_before, last_seq)


def test_the_fixture_is_a_populated_v2_database(migrated: Migrated) -> None:
    assert migrated.revision_before == V2_REVISION == "0006"
    # The restore is complete: the same fingerprints as the database the dump was taken of.
    assert {t: list(f) for t, f in migrated.before.items()} == MANIFEST["tables"]
    rows = {table: count for table, (count, _) in migrated.before.items()}
    assert rows["ledgers"] == 2 and rows["accounts"] == 20, rows
    assert rows["entries"] >= 150 and rows["postings"] >= 300, rows
    assert rows["pending_outcomes"] >= 4 and rows["holds"] >= 4, rows
    assert rows["daily_closes"] == 1 and rows["balance_snapshots"] == 12, rows
    owner = get_engine(Settings(database_url=migrated.owner_url))
    with owner.connect() as conn:
        published, waiting, reversals = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE published_at IS NOT NULL), "
            "count(*) FILTER (WHERE published_at IS NULL), "
            "(SELECT count(*) FROM entries WHERE reverses IS NOT NULL) FROM outbox_events"
        )).one()  # fmt: skip
    assert published > 0 and waiting > 0 and reversals >= 5


def test_migration_to_head_keeps_every_row(migrated: Migrated) -> None:
    """Every table v2 had keeps its rows: same count, same md5 over the columns it had."""
    owner = get_engine(Settings(database_url=migrated.owner_url))
    assert migrate.current_revision(owner) == migrate.head_revision()
    with owner.connect() as conn:
        missing = sorted(set(migrated.columns) - set(_tables(conn)))
        assert missing == [], f"the migration dropped tables {missing}"
        after = _fingerprints(conn, migrated.columns)
    changed = {
        table: {"v2": migrated.before[table], "head": after[table]}
        for table in migrated.before
        if after[table] != migrated.before[table]
    }
    assert changed == {}, f"(rows, md5) changed by the migration: {changed}"


def test_arus_verify_passes_on_the_migrated_database(migrated: Migrated) -> None:
    report = _verify(migrated)
    assert len(report["ledgers"]) == 2
    assert all(r["ledger_seq_gap_free"] and not r["drift"] for r in report["ledgers"]), report


def test_migrated_engine_equals_a_fresh_databases(migrated: Migrated, engine: sa.Engine) -> None:
    """Functions, columns, constraints, indexes, triggers and grants: the migrated database ends
    where a database migrated from nothing does (the session's)."""
    owner = get_engine(Settings(database_url=migrated.owner_url))
    with owner.connect() as conn:
        upgraded = _schema(conn)
    with engine.connect() as conn:
        fresh = _schema(conn)
    for part in fresh:
        only_fresh = sorted(set(fresh[part]) - set(upgraded[part]))
        only_upgraded = sorted(set(upgraded[part]) - set(fresh[part]))
        assert (only_fresh, only_upgraded) == ([], []), f"{part} differ"


def _schema(conn: sa.Connection) -> dict[str, set[tuple[Any, ...]]]:
    queries = {
        # As tests/integration/test_engine_sql.py compares the files with the database.
        "functions": "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', "
        "md5(pg_get_functiondef(p.oid)) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
        "columns": "SELECT table_name, column_name, data_type, is_nullable, "
        "coalesce(column_default, ''), is_identity FROM information_schema.columns "
        "WHERE table_schema = 'public'",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public'",
        "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) "
        "FROM pg_trigger WHERE NOT tgisinternal",
        "types": "SELECT t.typname, t.typtype FROM pg_type t "
        "WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('c', 'd', 'e') "
        "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c')",
        "function_grants": "SELECT p.oid::regprocedure::text, a.grantee::regrole::text, "
        "a.privilege_type FROM pg_proc p, aclexplode(p.proacl) a "
        "WHERE p.pronamespace = 'public'::regnamespace AND a.grantee <> 0 "
        "AND a.grantee <> p.proowner",
        "table_grants": "SELECT c.relname, a.grantee::regrole::text, a.privilege_type "
        "FROM pg_class c, aclexplode(c.relacl) a "
        "WHERE c.relnamespace = 'public'::regnamespace AND a.grantee <> 0 "
        "AND a.grantee <> c.relowner",
        "public_function_grants": "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'public'::regnamespace "
        "AND has_function_privilege('public', p.oid, 'EXECUTE')",
    }
    return {part: {tuple(row) for row in conn.execute(sa.text(q)).all()}
            for part, q in queries.items()}  # fmt: skip


def test_the_migrated_ledgers_go_on(migrated: Migrated) -> None:
    """As the API's login: an old key posts, an old idempotency key replays its stored response,
    the open hold is captured, the lapsed one is refused and swept, a closed day stays closed,
    and ledger_seq goes on from where v2 left it, gap-free."""
    app = migrated.login(APP_USER, autocommit=True)
    books, shop = MANIFEST["ledgers"]["books"], MANIFEST["ledgers"]["shop"]
    books_key = parse_credentials(f"Bearer {books['write_key']}")
    seq = dict(migrated.last_seq_before)

    replay = MANIFEST["replay"]
    again = _post(app, books_key, replay["body"], key=replay["idempotency_key"])
    assert again.replayed and again.status == 200
    assert again.body == replay["response"]  # what v2 answered the first time

    posted = _post(app, books_key, {"description": "after the migration", "postings": [
        {"account": "cash", "direction": "debit", "amount": 123},
        {"account": "sales", "direction": "credit", "amount": 123}]})  # fmt: skip
    assert posted.status == 201 and not posted.replayed
    assert posted.body["ledger_seq"] == seq["books"] + 1

    captured = _pending(app, books_key, gateway.post_pending, "post",
                        MANIFEST["open_holds"]["far_future"])  # fmt: skip
    assert captured.status == 201
    assert captured.body["ledger_seq"] == seq["books"] + 2
    voided = _pending(app, parse_credentials(f"Bearer {shop['write_key']}"), gateway.void_pending,
                      "void", MANIFEST["open_holds"]["shop"])  # fmt: skip
    assert voided.status == 200, voided
    with pytest.raises(errors.PendingExpired):
        _pending(app, books_key, gateway.post_pending, "post", MANIFEST["expired_unswept_hold"])
    relay = migrated.login(JOB_USERS["relay"])
    assert gateway.expire_holds(relay) == 1  # the lapsed hold; the one without expiry stays

    closed_day = dt.date.fromisoformat(MANIFEST["closed_day"])
    with pytest.raises(errors.PeriodClosed):
        _post(app, books_key, {"effective_date": closed_day.isoformat(), "postings": [
            {"account": "cash", "direction": "debit", "amount": 1},
            {"account": "sales", "direction": "credit", "amount": 1}]})  # fmt: skip
    closer = migrated.login(JOB_USERS["close"])
    assert close.close_ledger(closer, uuid.UUID(books["id"]), closed_day)["ok"]  # idempotent

    with pytest.raises(errors.Unauthenticated):
        _post(app, parse_credentials(f"Bearer {books['revoked_key']}"), replay["body"])
    shop_entry = _post(app, parse_credentials(f"Bearer {shop['write_key']}"), {"postings": [
        {"account": "gbp-till", "direction": "debit", "amount": 5},
        {"account": "gbp-sales", "direction": "credit", "amount": 5}]})  # fmt: skip
    assert shop_entry.body["ledger_seq"] == seq["shop"] + 1

    owner = get_engine(Settings(database_url=migrated.owner_url))
    with owner.connect() as conn:
        assert _last_seqs(conn) == {"books": seq["books"] + 2, "shop": seq["shop"] + 1}
        outcomes = dict(conn.execute(sa.text(
            "SELECT entry_id::text, outcome FROM pending_outcomes WHERE entry_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True)), {"ids": [
            MANIFEST["open_holds"]["far_future"], MANIFEST["open_holds"]["shop"],
            MANIFEST["expired_unswept_hold"]]}).all())  # fmt: skip
    assert sorted(outcomes.values()) == ["expired", "posted", "voided"], outcomes
    report = _verify(migrated)
    assert all(r["ledger_seq_gap_free"] for r in report["ledgers"]), report


def _post(engine: sa.Engine, credentials: Any, body: dict[str, Any],
          key: str | None = None) -> gateway.MutationResult:  # fmt: skip
    return gateway.post_entry(
        engine, credentials=credentials, entry=commands.parse_new_entry(body),
        idempotency_key=key or uuid.uuid4().hex, request_body=body, operation="POST /v1/entries",
    )  # fmt: skip


def _pending(engine: sa.Engine, credentials: Any, use_case: Any, action: str,
             entry_id: str) -> gateway.MutationResult:  # fmt: skip
    parse = commands.parse_post_pending if action == "post" else commands.parse_void_pending
    return use_case(  # type: ignore[no-any-return]
        engine, credentials=credentials, action=parse(uuid.UUID(entry_id), {}),
        idempotency_key=uuid.uuid4().hex, request_body={},
        operation=f"POST /v1/entries/{entry_id}/{action}",
    )  # fmt: skip


def _verify(migrated: Migrated) -> dict[str, Any]:
    """`arus verify` as the API's login, as the session's own check runs it: exit 0."""
    url = sa.engine.make_url(migrated.owner_url).set(username=APP_USER)
    result = subprocess.run(
        [sys.executable, "-m", "arus.tools.cli", "verify"],
        env={**os.environ, "ARUS_DATABASE_URL": url.render_as_string(hide_password=False)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report
