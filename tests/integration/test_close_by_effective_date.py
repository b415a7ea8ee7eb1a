"""The close of day D covers every posted entry dated on or before D, whenever it was posted,
and every account with such postings (SPEC §3.3; v2 closed by created_at)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from arus.errors import ValidationError
from arus.jobs import close
from arus.ledger.commands import today_utc

from tests.support.ledgers import backdate_ledger

TODAY = today_utc()
YESTERDAY = TODAY - dt.timedelta(days=1)


def _post(api, ledger, debit: str, credit: str, amount: int, day: dt.date):
    lines = [{"account": debit, "direction": "debit", "amount": amount},
             {"account": credit, "direction": "credit", "amount": amount}]  # fmt: skip
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                        json={"postings": lines, "effective_date": day.isoformat()})  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _as_of(api, ledger, day: dt.date) -> dict[str, int]:
    response = api.get("/v1/balances", key=ledger.read_key, query_string={"as_of": day.isoformat()})
    assert response.status_code == 200, response.get_json()
    return {b["account_code"]: b["balance"] for b in response.get_json()["data"]}


def test_an_entry_dated_yesterday_and_posted_today_is_in_yesterdays_close(api, ledger, engine):
    backdate_ledger(engine, ledger.ledger_id, days=2)
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    _post(api, ledger, "cash", "equity", 70, YESTERDAY)  # posted after yesterday's midnight
    _post(api, ledger, "cash", "equity", 5, TODAY)  # dated after the day: not in its books
    report = close.close_ledger(engine, ledger.ledger_id, YESTERDAY)
    assert report["ok"] and report["accounts"] == 2, report
    assert _as_of(api, ledger, YESTERDAY) == {"cash": 70, "equity": 70}


def test_an_account_created_after_the_day_with_postings_dated_in_it_is_in_the_snapshot(
    api, ledger, engine
):
    backdate_ledger(engine, ledger.ledger_id, days=2)
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    api.account(ledger, "unused", allow_negative=True)  # no postings: not in the day's books
    _post(api, ledger, "cash", "equity", 12, YESTERDAY)
    close.close_ledger(engine, ledger.ledger_id, YESTERDAY)
    assert _as_of(api, ledger, YESTERDAY) == {"cash": 12, "equity": 12}


def test_a_day_before_the_last_close_can_no_longer_be_closed(api, ledger, engine):
    backdate_ledger(engine, ledger.ledger_id, days=3)
    report = close.close_ledger(engine, ledger.ledger_id, YESTERDAY)
    assert report["ok"]
    with pytest.raises(ValidationError, match="closed through"):
        close.close_ledger(engine, ledger.ledger_id, YESTERDAY - dt.timedelta(days=1))
