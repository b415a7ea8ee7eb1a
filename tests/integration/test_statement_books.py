"""A statement agrees with the ledger's other two time axes where they meet (SPEC §3.3, §3.5): its
closing through a closed day D is that account's balance in `GET /v1/balances?as_of=D` (the close
of D covers every posted entry dated on or before D, whenever it was posted), and, when every
entry is dated on its posting day, its closing through today is the balance now and at now."""

from __future__ import annotations

import datetime as dt
import uuid

from arus.jobs import close
from arus.ledger.commands import today_utc

from tests.support.ledgers import age_ledger

TODAY = today_utc()
ACCOUNTS = (("cash", "asset"), ("card", "asset"), ("sales", "revenue"), ("owner", "equity"))


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def _post(api, ledger, debit: str, credit: str, amount: int, effective: dt.date | None = None):
    body = {"postings": [{"account": debit, "direction": "debit", "amount": amount},
                         {"account": credit, "direction": "credit", "amount": amount}]}  # fmt: skip
    if effective is not None:
        body["effective_date"] = effective.isoformat()
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                        json=body)  # fmt: skip
    assert response.status_code == 201, response.get_json()


def _closing(api, ledger, code: str, through: dt.date) -> int:
    query = {"from": day(-30).isoformat(), "to": through.isoformat(), "limit": "500"}
    response = api.get(f"/v1/accounts/{code}/statement", key=ledger.read_key, query_string=query)
    assert response.status_code == 200, response.get_json()
    return int(response.get_json()["closing_balance"])


def _as_of(api, ledger, closed: dt.date) -> dict[str, int]:
    response = api.get("/v1/balances", key=ledger.read_key,
                       query_string={"as_of": closed.isoformat(), "limit": "500"})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    return {b["account_code"]: b["balance"] for b in response.get_json()["data"]}


def _books_over_three_days(api, engine, ledger) -> None:
    """Entries on day -2, day -1 and today, each dated on the day it was posted (the history is
    moved a day into the past after each day's entries), then days -2 and -1 closed."""
    for code, type_ in ACCOUNTS:
        api.account(ledger, code, type_, allow_negative=True)
    for entries in (
        [("cash", "owner", 1_000), ("card", "sales", 70)],
        [("cash", "sales", 30), ("sales", "card", 5), ("card", "cash", 200)],
    ):
        for debit, credit, amount in entries:
            _post(api, ledger, debit, credit, amount)
        age_ledger(engine, ledger.ledger_id, days=1)
    _post(api, ledger, "cash", "sales", 9)
    for closed in (day(-2), day(-1)):
        assert close.close_ledger(engine, ledger.ledger_id, closed)["ok"]


def test_closing_through_a_closed_day_is_its_as_of_balance(api, engine, ledger):
    _books_over_three_days(api, engine, ledger)
    for closed in (day(-2), day(-1)):
        snapshot = _as_of(api, ledger, closed)
        assert snapshot, closed
        for code, _ in ACCOUNTS:
            assert _closing(api, ledger, code, closed) == snapshot.get(code, 0), (code, closed)
    assert _as_of(api, ledger, day(-2))["cash"] == 1_000
    assert _as_of(api, ledger, day(-1))["cash"] == 830


def test_closing_through_today_is_the_balance_now_and_at_now(api, engine, ledger):
    _books_over_three_days(api, engine, ledger)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    for code, _ in ACCOUNTS:
        closing = _closing(api, ledger, code, TODAY)
        account = api.get(f"/v1/accounts/{code}", key=ledger.read_key).get_json()
        at_now = api.get(f"/v1/accounts/{code}/balance", key=ledger.read_key,
                         query_string={"at": now}).get_json()  # fmt: skip
        assert closing == account["balance"] == at_now["balance"], code


def test_a_back_dated_entry_is_in_the_close_and_the_statement_of_its_date(api, engine, ledger):
    """SPEC §3.3: the close of D covers entries dated on or before D, whenever posted; an entry
    dated day -2 but posted today (before day -2 is closed) is in both."""
    for code, type_ in ACCOUNTS:
        api.account(ledger, code, type_, allow_negative=True)
    _post(api, ledger, "cash", "owner", 1_000)
    age_ledger(engine, ledger.ledger_id, days=3)  # the ledger from day -3, that entry on day -3
    _post(api, ledger, "cash", "sales", 40, effective=day(-2))  # posted today, dated day -2
    _post(api, ledger, "card", "sales", 3)  # posted and dated today
    assert close.close_ledger(engine, ledger.ledger_id, day(-2))["ok"]
    snapshot = _as_of(api, ledger, day(-2))
    assert snapshot["cash"] == _closing(api, ledger, "cash", day(-2)) == 1_040
    assert snapshot["sales"] == _closing(api, ledger, "sales", day(-2)) == 40
    assert snapshot.get("card", 0) == _closing(api, ledger, "card", day(-2)) == 0
