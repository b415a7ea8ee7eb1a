"""Daily close: snapshots as of end of day, idempotent per (ledger, date), drift detection."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from arus.errors import ValidationError
from arus.jobs import close
from arus.ledger.commands import today_utc

from tests.support.ledgers import age_ledger, backdate_ledger, injected_drift

TODAY = today_utc()
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture
def books(api, ledger):
    api.account(ledger, "cash")
    api.account(ledger, "equity", "equity", allow_negative=True)
    api.account(ledger, "fees", "revenue")
    api.account(ledger, "eur", currency="EUR", allow_negative=True)
    api.account(ledger, "eur-equity", "equity", currency="EUR", allow_negative=True)
    assert api.transfer(ledger, "cash", "equity", 10_000).status_code == 201
    assert api.transfer(ledger, "cash", "fees", 250).status_code == 201
    assert api.transfer(ledger, "eur", "eur-equity", 70).status_code == 201
    return ledger


@pytest.fixture
def aged_books(engine, books):
    """The books, written yesterday: a day that is over, so it can be closed."""
    age_ledger(engine, books.ledger_id, days=1)
    return books


def _count(engine, table: str, ledger) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT count(*) FROM {table} WHERE ledger_id = :l"), {"l": ledger.ledger_id}
        ).scalar_one()


def test_close_snapshots_balances_and_proves_zero_net(engine, aged_books):
    report = close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
    assert report["ok"] and report["balanced"] and report["drift"] == []
    assert report["accounts"] == 5 and report["last_ledger_seq"] == 3
    assert report["totals"] == [
        {"currency": "EUR", "debit": 70, "credit": 70},
        {"currency": "USD", "debit": 10_250, "credit": 10_250},
    ]
    assert _count(engine, "balance_snapshots", aged_books) == 5


def test_close_is_idempotent_per_ledger_and_date(api, engine, aged_books):
    first = close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
    # Later postings must not change a closed day's snapshot.
    assert api.transfer(aged_books, "cash", "equity", 1).status_code == 201
    second = close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
    assert second == first
    assert _count(engine, "daily_closes", aged_books) == 1
    assert _count(engine, "balance_snapshots", aged_books) == 5
    with engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT count(*) FROM outbox_events WHERE ledger_id = :l "
                "AND event_type = 'ledger.closed'"
            ),
            {"l": aged_books.ledger_id},
        ).scalar_one()
    assert events == 1


def test_balances_as_of_serves_the_snapshot(api, engine, aged_books):
    close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
    assert api.transfer(aged_books, "cash", "equity", 5).status_code == 201
    query = {"as_of": YESTERDAY.isoformat(), "limit": 3}
    page = api.get("/v1/balances", key=aged_books.read_key, query_string=query).get_json()
    query["cursor"] = page["next_cursor"]
    rest = api.get("/v1/balances", key=aged_books.read_key, query_string=query).get_json()
    balances = {b["account_code"]: b["balance"] for b in page["data"] + rest["data"]}
    assert balances == {"cash": 10_250, "equity": 10_000, "eur": 70, "eur-equity": 70, "fees": 250}
    assert page["as_of"] == YESTERDAY.isoformat() and rest["next_cursor"] is None
    live = api.get("/v1/accounts/cash", key=aged_books.read_key).get_json()["balance"]
    assert live == 10_255


def test_balances_as_of_requires_a_closed_date(api, books):
    missing = api.get("/v1/balances", key=books.read_key, query_string={"as_of": "2001-01-01"})
    assert missing.status_code == 404
    for bad in ({}, {"as_of": "01/02/2026"}, {"as_of": "20240101"}, {"as_of": "2024-W01-1"}):
        response = api.get("/v1/balances", key=books.read_key, query_string=bad)
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "validation_error"


def test_close_detects_injected_drift_and_stores_nothing(engine, aged_books):
    fees = "(SELECT id FROM accounts WHERE ledger_id = :l AND code = 'fees')"
    with injected_drift(engine, fees, 3, {"l": aged_books.ledger_id}):
        report = close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
    assert report["ok"] is False
    assert [(d["account_code"], d["materialized_balance"], d["postings_balance"])
            for d in report["drift"]] == [("fees", 253, 250)]  # fmt: skip
    assert _count(engine, "daily_closes", aged_books) == 0
    assert _count(engine, "balance_snapshots", aged_books) == 0


def test_a_day_cannot_be_closed_before_it_ends(engine, books):
    with pytest.raises(Exception, match="can be closed from"):
        close.close_ledger(engine, books.ledger_id, TODAY)


def test_a_day_before_the_ledger_existed_cannot_be_closed(engine, books):
    with pytest.raises(ValidationError, match="before the ledger existed"):
        close.close_ledger(engine, books.ledger_id, TODAY - dt.timedelta(days=1))


def test_snapshot_excludes_entries_dated_after_the_day(engine, books):
    yesterday = TODAY - dt.timedelta(days=1)
    backdate_ledger(engine, books.ledger_id, days=2)
    report = close.close_ledger(engine, books.ledger_id, yesterday)
    # Every entry of this ledger is dated today: yesterday's books are empty, and balanced; the
    # seal covers the journal as it stood when the close ran, whatever the entries' dates.
    assert report["ok"] and report["accounts"] == 0
    with engine.connect() as conn:
        last_seq = conn.execute(sa.text("SELECT last_ledger_seq FROM ledgers WHERE id = :l"),
                                {"l": books.ledger_id}).scalar_one()  # fmt: skip
    assert last_seq > 0 and report["last_ledger_seq"] == last_seq


def test_daily_close_function_closes_every_ledger(books, database_url, engine):
    from functions_framework import create_app

    from tests.support.ledgers import REPO

    backdate_ledger(engine, books.ledger_id, days=2)
    client = create_app("daily_close", str(REPO / "functions/daily_close/main.py")).test_client()
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    response = client.post("/", json={"date": yesterday})
    assert response.status_code == 200, response.get_json()
    closes = response.get_json()["closes"]
    assert str(books.ledger_id) in {c["ledger_id"] for c in closes}
    assert all(c["ok"] and c["date"] == yesterday for c in closes)
    # A rerun is idempotent: the same reports, nothing new.
    assert client.post("/", json={"date": yesterday}).get_json()["closes"] == closes
    too_early = client.post("/", json={"date": TODAY.isoformat()})
    assert too_early.status_code == 422
    assert client.post("/", json={"day": "x"}).status_code == 422
    for bad in (5, None, "9999-12-31", "2024-W01-1", "20240101", "2024-02-30"):
        response = client.post("/", json={"date": bad})
        assert response.status_code == 422, (bad, response.get_json())


def test_the_close_waits_for_an_entry_stamped_before_midnight_whose_writer_is_still_open(
    engine, aged_books
):
    """However long an entry's transaction stays open, the close sees it: an entry dated on the
    day it is written takes no close lock, but the engine sequences it while it holds the ledger
    row, and the close waits for that row's holder. Here a writer writes an entry of the closed
    day (dated and stamped yesterday) and keeps its transaction open."""
    import threading

    lines = json.dumps([
        {"account_code": "cash", "direction": "debit", "amount": 5},
        {"account_code": "equity", "direction": "credit", "amount": 5},
    ])  # fmt: skip
    with engine.connect() as writer:
        tx = writer.begin()
        writer.execute(
            sa.text("SELECT arus_post_entry(:key_id, :secret_hash, 'late', 'f', 'late', "
                    "CAST(:day AS date), NULL, CAST(:lines AS jsonb), false, NULL)"),
            {**aged_books.credentials.as_params(), "lines": lines, "day": TODAY},
        )  # fmt: skip
        writer.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table, dated in (
            ("entries", ", effective_date = effective_date - 1"),
            ("postings", ""),
        ):  # written yesterday, still uncommitted
            writer.execute(
                sa.text(f"UPDATE {table} SET created_at = created_at - interval '1 day'{dated} "
                        "WHERE ledger_id = :l AND created_at > now() - interval '1 hour'"),
                {"l": aged_books.ledger_id},
            )  # fmt: skip
        reports: list[dict] = []
        closer = threading.Thread(
            target=lambda: reports.append(
                close.close_ledger(engine, aged_books.ledger_id, YESTERDAY)
            )
        )
        closer.start()
        closer.join(timeout=1.0)
        assert closer.is_alive(), "the close must wait for the open writer"
        tx.commit()
    closer.join(timeout=30)
    (report,) = reports
    assert report["ok"] and report["last_ledger_seq"] == 4, report
    usd = next(t for t in report["totals"] if t["currency"] == "USD")
    assert usd == {"currency": "USD", "debit": 10_255, "credit": 10_255}, report
