"""Closed days stay closed, and dates have bounds (SPEC §3.3)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from arus.jobs import close
from arus.ledger.commands import today_utc

from tests.support.ledgers import backdate_ledger

TODAY = today_utc()
CLOSED = TODAY - dt.timedelta(days=2)
FIRST_OPEN = CLOSED + dt.timedelta(days=1)


def _entry(amount: int, day: dt.date | None = None, **extra: object) -> dict[str, object]:
    return {
        "postings": [
            {"account": "cash", "direction": "debit", "amount": amount},
            {"account": "equity", "direction": "credit", "amount": amount},
        ],
        **({} if day is None else {"effective_date": day.isoformat()}),
        **extra,
    }


@pytest.fixture
def closed_books(api, ledger, engine):
    """A ledger that existed for three days, closed through two days ago."""
    api.account(ledger, "cash")
    api.account(ledger, "equity", "equity", allow_negative=True)
    backdate_ledger(engine, ledger.ledger_id, days=3)
    assert close.close_ledger(engine, ledger.ledger_id, CLOSED)["ok"]
    return ledger


def post(api, ledger, body, path="/v1/entries"):
    return api.post(path, key=ledger.write_key, json=body, idempotency_key=uuid.uuid4().hex)


def test_an_entry_dated_into_a_closed_day_is_period_closed(api, closed_books):
    for day in (CLOSED, CLOSED - dt.timedelta(days=30)):
        refused = post(api, closed_books, _entry(5, day))
        assert refused.status_code == 422, refused.get_json()
        error = refused.get_json()["error"]
        assert (
            error["code"] == "period_closed" and error["first_open_date"] == FIRST_OPEN.isoformat()
        )
        assert CLOSED.isoformat() in error["message"]
    for day in (FIRST_OPEN, TODAY, None):
        assert post(api, closed_books, _entry(5, day)).status_code == 201, day


def test_batch_items_and_reversals_dated_into_a_closed_day_are_period_closed(api, closed_books):
    batch = {"entries": [
        {**_entry(1, FIRST_OPEN), "idempotency_key": "open"},
        {**_entry(1, CLOSED), "idempotency_key": "closed"},
    ]}  # fmt: skip
    results = post(api, closed_books, batch, "/v1/entries/batch").get_json()["results"]
    assert [r["status"] for r in results] == [201, 422]
    assert results[1]["error"]["code"] == "period_closed"
    assert results[1]["error"]["first_open_date"] == FIRST_OPEN.isoformat()
    atomic = post(api, closed_books, {**batch, "atomic": True}, "/v1/entries/batch")
    assert atomic.status_code == 422
    assert atomic.get_json()["error"] | {"message": None} == {
        "code": "period_closed", "message": None, "index": 1,
        "first_open_date": FIRST_OPEN.isoformat(),
    }  # fmt: skip
    entry_id = results[0]["entry"]["id"]
    reversal = post(api, closed_books, {"effective_date": CLOSED.isoformat()},
                    f"/v1/entries/{entry_id}/reverse")  # fmt: skip
    assert reversal.status_code == 422 and reversal.get_json()["error"]["code"] == "period_closed"
    assert post(api, closed_books, {}, f"/v1/entries/{entry_id}/reverse").status_code == 201


def test_a_close_in_progress_holds_back_dated_entries_until_it_commits(api, closed_books, engine):
    """The race the close lock closes: a back-dated entry judged while the next day's close is
    being written must see that close once it commits, never slip in before it."""
    next_day = FIRST_OPEN
    answers: list[int] = []
    with engine.connect() as conn:
        tx = conn.begin()
        conn.execute(sa.text("SELECT arus_close_lock(:l, true)"), {"l": closed_books.ledger_id})
        conn.execute(
            # A close as the close stores it: later closes of that day return this report.
            # Nothing was written since the previous close: its sequence number and seal carry.
            sa.text("INSERT INTO daily_closes (ledger_id, close_date, report, last_ledger_seq, "
                    "seal) SELECT :l, :d, jsonb_build_object('ledger_id', CAST(:l AS text), "
                    "'date', CAST(:d AS text), 'ok', true), last_ledger_seq, seal "
                    "FROM daily_closes WHERE ledger_id = :l ORDER BY close_date DESC LIMIT 1"),
            {"l": closed_books.ledger_id, "d": next_day},
        )  # fmt: skip

        client = type(api)(api.post_client.application.test_client(), api.query_client)

        def back_dated() -> None:
            answers.append(post(client, closed_books, _entry(3, next_day)).status_code)

        worker = threading.Thread(target=back_dated)
        worker.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event IN ('tuple', 'transactionid')"
            )).scalar_one()  # fmt: skip
            if waiting:
                break
            time.sleep(0.02)
        assert waiting == 1 and not answers, "the back-dated entry waits for the close"
        tx.commit()
        worker.join(timeout=30)
    assert answers == [422]
    assert post(api, closed_books, _entry(3, TODAY)).status_code == 201


def test_effective_date_is_at_most_366_days_ahead(api, closed_books):
    assert post(api, closed_books, _entry(1, TODAY + dt.timedelta(days=366))).status_code == 201
    far = post(api, closed_books, _entry(1, TODAY + dt.timedelta(days=367)))
    assert far.status_code == 422 and far.get_json()["error"]["code"] == "validation_error"
    assert "366 days ahead" in far.get_json()["error"]["message"]


def test_as_of_a_closed_day_keeps_what_the_close_saw(api, closed_books):
    snapshot = api.get(f"/v1/balances?as_of={CLOSED.isoformat()}", key=closed_books.read_key)
    assert snapshot.status_code == 200
    before = snapshot.get_json()
    assert post(api, closed_books, _entry(9, CLOSED)).status_code == 422
    again = api.get(f"/v1/balances?as_of={CLOSED.isoformat()}", key=closed_books.read_key)
    assert again.get_json() == before
