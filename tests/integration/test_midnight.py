"""The close's midnight race, on a PostgreSQL whose clock is faked (libfaketime, preloaded into
the server only): a call dated on the day it starts takes no close lock; if the day ends before
it takes the ledger row and that day's close runs meanwhile, the engine refuses it (40001) so
that its retry, now back-dated, is judged against the close (SPEC §3.3, ADR-008). Without the
refusal the entry would be written into a closed day, outside that day's close."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from arus.admin import migrate
from arus.admin.ledgers import create_ledger_with_keys
from arus.platform.config import Settings
from arus.platform.db import create_engine, sqlalchemy_url

from tests.support.faked_clock import (
    faked_clock_env,
    init_cluster,
    pg_ctl,
    socket_options,
    stop_cluster,
)

DAY = dt.date.today()  # the faked clock runs from 23:59:58 of this (UTC) day
START = f"@{DAY.isoformat()} 23:59:58"


@pytest.fixture
def faked_server() -> Iterator[tuple[Path, Settings, list[str]]]:
    """A PostgreSQL of its own, migrated, restarted with its clock 2 s before midnight."""
    if shutil.which("runuser") is None:
        pytest.fail("runuser is needed to start a PostgreSQL as another user")
    root = Path(tempfile.mkdtemp(prefix="arus-midnight-"))
    data = init_cluster(root)
    options = socket_options(root)
    pg_ctl(data, *options, "start")
    try:
        url = f"postgresql://postgres@/postgres?host={root}"
        settings = Settings(database_url=url)
        yield data, settings, options
    finally:
        stop_cluster(data)
        shutil.rmtree(root, ignore_errors=True)


def _engine(settings: Settings) -> sa.Engine:
    url, connect_args = sqlalchemy_url(settings.database_url or "")
    return sa.create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")


def test_a_call_the_day_ended_under_is_refused_and_its_retry_meets_the_close(faked_server):
    data, settings, options = faked_server
    migrations = create_engine(settings)  # in transactions, as `arus migrate` runs them
    migrate.upgrade(migrations)
    created = create_ledger_with_keys(migrations, "midnight")
    migrations.dispose()
    engine = _engine(settings)
    key_id, secret = created["write_key"].removeprefix("arus_").split("_", 1)
    credentials = {"key_id": key_id, "secret_hash": hashlib.sha256(secret.encode()).digest()}
    with engine.connect() as conn:
        for code, kind in (("cash", "asset"), ("equity", "equity")):
            conn.execute(sa.text("SELECT arus_create_account(:key_id, :secret_hash, NULL, NULL, "
                                 ":code, :code, :kind, 'USD', true, NULL)"),
                         {**credentials, "code": code, "kind": kind})  # fmt: skip
        conn.execute(sa.text("UPDATE ledgers SET created_at = created_at - interval '2 days'"))
    engine.dispose()
    pg_ctl(data, "-m", "fast", "stop")
    pg_ctl(data, *options, "start", env=faked_clock_env(FAKETIME=START))

    engine = _engine(settings)
    post = sa.text(
        "SELECT arus_post_entry(:key_id, :secret_hash, :key, 'f', NULL, CAST(:day AS date), "
        "NULL, CAST(:lines AS jsonb), false, NULL)"
    )
    lines = json.dumps(
        [
            {"account_code": "cash", "direction": "debit", "amount": 5},
            {"account_code": "equity", "direction": "credit", "amount": 5},
        ]
    )
    with engine.connect() as conn:
        now = conn.execute(sa.text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")).one()[0]
        assert now.date() == DAY and now.hour == 23, f"the faked clock reads {now}"
    holder = engine.connect()  # keeps the writer short of its sequence step past midnight
    holder.exec_driver_sql("BEGIN")
    holder.execute(sa.text("SELECT 1 FROM balances b JOIN accounts a ON a.id = b.account_id "
                           "WHERE a.code = 'cash' FOR UPDATE"))  # fmt: skip
    answers: list[object] = []

    def write() -> None:
        with engine.connect() as conn:
            try:
                conn.execute(post, {**credentials, "key": "late", "day": DAY, "lines": lines})
                answers.append("written")
            except sa.exc.DBAPIError as exc:
                answers.append(exc.orig.args[0].get("C"))

    writer = threading.Thread(target=write)
    writer.start()
    with engine.connect() as conn:
        deadline = time.monotonic() + 10
        while conn.execute(sa.text("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date")
                           ).scalar_one() == DAY:  # fmt: skip
            assert time.monotonic() < deadline, "the faked clock did not pass midnight"
            time.sleep(0.1)
        ledger = created["ledger_id"]
        report = conn.execute(sa.text("SELECT arus_close_day(:l, :d)"),
                              {"l": ledger, "d": DAY}).scalar_one()  # fmt: skip
        assert report["ok"] and report["accounts"] == 0, report
    holder.exec_driver_sql("COMMIT")
    holder.close()
    writer.join(timeout=30)
    assert answers == ["40001"], "a call dated a closed day was written outside its close"
    with engine.connect() as conn:
        retried = None
        try:
            conn.execute(post, {**credentials, "key": "late", "day": DAY, "lines": lines})
        except sa.exc.DBAPIError as exc:
            retried = exc.orig.args[0].get("H")
        entries = conn.execute(sa.text("SELECT count(*) FROM entries")).scalar_one()
    assert retried == "period_closed" and entries == 0
    engine.dispose()
