"""The sealed journal (SPEC §3.5): each close seals the journal since the previous close, and
`arus verify` names the first close whose journal was changed behind the triggers."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from arus.jobs import close, verify
from arus.ledger.commands import today_utc

from tests.support.ledgers import REPO, backdate_ledger

TODAY = today_utc()
DAY_ONE = TODAY - dt.timedelta(days=2)
DAY_TWO = TODAY - dt.timedelta(days=1)


def _post(api, ledger, debit, credit, amount, day, **extra):
    lines = [{"account": debit, "direction": "debit", "amount": amount},
             {"account": credit, "direction": "credit", "amount": amount}]  # fmt: skip
    body = {"postings": lines, "effective_date": day.isoformat(), **extra}
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                        json=body)  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def sealed(api, ledger, engine):
    """Two closed days: an entry, a reversal and a voided hold in the first, one more entry in the
    second."""
    backdate_ledger(engine, ledger.ledger_id, days=3)
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    api.account(ledger, "wallet", "liability", allow_negative=True)
    first = _post(api, ledger, "cash", "equity", 100, DAY_ONE, description="first | with\na bar")
    reversed_ = api.post(f"/v1/entries/{first['id']}/reverse", key=ledger.write_key,
                         idempotency_key=uuid.uuid4().hex,
                         json={"effective_date": DAY_ONE.isoformat()})  # fmt: skip
    assert reversed_.status_code == 201, reversed_.get_json()
    hold = _post(api, ledger, "wallet", "cash", 30, DAY_ONE, status="pending",
                 metadata={"order": "ü-1"})  # fmt: skip
    voided = api.post(f"/v1/entries/{hold['id']}/void", key=ledger.write_key,
                      idempotency_key=uuid.uuid4().hex)  # fmt: skip
    assert voided.status_code == 200, voided.get_json()
    assert close.close_ledger(engine, ledger.ledger_id, DAY_ONE)["ok"]
    _post(api, ledger, "cash", "equity", 7, DAY_TWO)
    assert close.close_ledger(engine, ledger.ledger_id, DAY_TWO)["ok"]
    return ledger


def _report(engine, ledger) -> dict:
    report = verify.verify_all(engine)
    return next(r for r in report["ledgers"] if r["ledger_id"] == str(ledger.ledger_id))


def _tampered(engine, ledger, *statements: str) -> dict:
    """What verify finds after `statements` ran as the owner behind the triggers (what the seal
    exists to catch), in a transaction rolled back after: the suite's own verify stays clean."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(sa.text(statement), {"l": ledger.ledger_id})
        report = verify.verify_ledger(conn, ledger.ledger_id)
        tx.rollback()
    return report


def test_every_close_is_sealed_and_verify_recomputes_the_seals(api, sealed, engine):
    got = api.get(f"/v1/closes/{DAY_ONE.isoformat()}", key=sealed.read_key)
    assert got.status_code == 200, got.get_json()
    body = got.get_json()
    assert body["close_date"] == DAY_ONE.isoformat() and body["last_ledger_seq"] == 3
    assert len(body["seal"]) == 64 and body["balanced"] is True
    listed = api.get("/v1/closes", key=sealed.read_key).get_json()["data"]
    assert [c["close_date"] for c in listed] == [DAY_TWO.isoformat(), DAY_ONE.isoformat()]
    assert listed[0]["seal"] != listed[1]["seal"]
    report = _report(engine, sealed)
    assert report["closes_sealed"] == 2 and report["seal_broken_at"] is None and report["ok"]


def test_a_rewritten_description_breaks_the_seal_of_its_close(sealed, engine):
    report = _tampered(engine, sealed, "UPDATE entries SET description = 'nothing to see' "
                                       "WHERE ledger_id = :l AND ledger_seq = 1")  # fmt: skip
    assert report["seal_broken_at"] == DAY_ONE.isoformat() and not report["ok"]


def test_a_rewritten_amount_without_drift_breaks_the_seal(sealed, engine):
    """Both lines of the last entry and both balances moved by the same amount: balanced, no
    drift, nothing but the seal shows it."""
    report = _tampered(
        engine,
        sealed,
        "UPDATE postings SET amount = amount + 1, balance_after = balance_after + 1 "
        "WHERE entry_id = (SELECT id FROM entries WHERE ledger_id = :l AND ledger_seq = 4)",
        "UPDATE balances SET balance = balance + 1 WHERE account_id IN (SELECT account_id "
        "FROM postings WHERE entry_id = (SELECT id FROM entries WHERE ledger_id = :l "
        "AND ledger_seq = 4))",
    )
    assert report["drift"] == [] and report["balanced"], report
    assert report["seal_broken_at"] == DAY_TWO.isoformat() and not report["ok"]


def test_a_deleted_pending_outcome_breaks_the_seal(sealed, engine):
    report = _tampered(engine, sealed, "DELETE FROM pending_outcomes WHERE ledger_id = :l")
    assert report["seal_broken_at"] == DAY_ONE.isoformat()


def _metadata(engine, ledger, value: str) -> None:
    """Rewrites the metadata of the second day's entry, committed (undone by the caller)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text("UPDATE entries SET metadata = CAST(:m AS jsonb) "
                             "WHERE ledger_id = :l AND ledger_seq = 4"),
                     {"m": value, "l": ledger.ledger_id})  # fmt: skip


def test_arus_verify_exits_1_naming_the_close(sealed, engine, settings):
    _metadata(engine, sealed, '{"x": 1}')
    try:
        env = {"ARUS_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "arus.tools.cli", "verify"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        _metadata(engine, sealed, "{}")
    assert done.returncode == 1
    assert f"the journal sealed by the close of {DAY_TWO.isoformat()} no longer matches" in (
        done.stderr
    ), done.stderr


def test_the_documented_script_recomputes_the_same_seals(sealed, engine, settings):
    url = sa.engine.make_url(settings.database_url)
    done = subprocess.run(
        [sys.executable, str(REPO / "docs/seal/recompute_seal.py"), str(sealed.ledger_id),
         "--unix-sock", f"{url.query['host']}/.s.PGSQL.{url.port or 5432}",
         "--user", url.username or "postgres", "--database", str(url.database)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")[:2]
    assert [line.split()[:2] for line in lines] == [
        [DAY_ONE.isoformat(), "ok"],
        [DAY_TWO.isoformat(), "ok"],
    ], done.stdout
    _metadata(engine, sealed, '{"x": 1}')
    try:
        again = subprocess.run(done.args, capture_output=True, text=True, timeout=60)
    finally:
        _metadata(engine, sealed, "{}")
    assert again.stdout.split("\n")[1].split()[1] == "MISMATCH", again.stdout


def test_the_client_reads_closes_and_their_seals(sealed, app_settings):
    import httpx
    from arus.web.app import create_app
    from arus_client.client import ArusClient, NotFoundError

    transport = httpx.WSGITransport(app=create_app(app_settings))
    with ArusClient("http://arus.test", sealed.read_key, transport=transport) as client:
        listed = client.list_closes(limit=1)
        assert [c.close_date for c in listed.data] == [DAY_TWO.isoformat()]
        rest = client.list_closes(limit=1, cursor=listed.next_cursor)
        assert [c.close_date for c in rest.data] == [DAY_ONE.isoformat()]
        assert rest.next_cursor is None
        one = client.get_close(DAY_ONE)
        assert one.seal == rest.data[0].seal and one.last_ledger_seq == 3 and one.balanced
        with pytest.raises(NotFoundError):
            client.get_close(TODAY)
