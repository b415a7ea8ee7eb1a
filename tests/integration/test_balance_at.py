"""Balances at an instant (SPEC §3.3): one account, every account, and what the rule means."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest


def _instant(text: str, *, plus_us: int = 0) -> str:
    at = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) + dt.timedelta(microseconds=plus_us)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def history(api, ledger):
    """cash receives 100, 250 and 40 from equity, one entry each; returns the entries."""
    api.account(ledger, "cash")
    api.account(ledger, "equity", "equity", allow_negative=True)
    made = []
    for amount in (100, 250, 40):
        response = api.transfer(ledger, "cash", "equity", amount)
        assert response.status_code == 201
        made.append(response.get_json())
    return made


def balance_at(api, ledger, ref, at):
    return api.get(f"/v1/accounts/{ref}/balance", key=ledger.read_key, query_string={"at": at})


def test_the_balance_at_an_instant_is_the_one_right_after_the_last_posting_by_then(
    api, ledger, history
):
    before = _instant(history[0]["created_at"], plus_us=-1)
    assert balance_at(api, ledger, "cash", before).get_json() == {
        "account_id": history[0]["postings"][0]["account_id"], "at": before, "balance": 0,
    }  # fmt: skip
    running = 0
    for entry in history:
        running += entry["postings"][0]["amount"]
        at = entry["created_at"]
        assert balance_at(api, ledger, "cash", at).get_json()["balance"] == running, at
        equity = balance_at(api, ledger, "equity", _instant(at, plus_us=1)).get_json()
        assert equity["balance"] == running  # credit-normal: credited, so it grew
    far = balance_at(api, ledger, "cash", "2999-01-01T00:00:00+05:00").get_json()
    assert far == {**far, "at": "2998-12-31T19:00:00.000000Z", "balance": 390}


def test_balances_at_an_instant_list_every_account_by_code(api, ledger, history):
    at = history[1]["created_at"]
    response = api.get("/v1/balances", key=ledger.read_key, query_string={"at": at, "limit": 1})
    assert response.status_code == 200, response.get_json()
    first = response.get_json()
    assert first["at"] == at and [b["account_code"] for b in first["data"]] == ["cash"]
    assert first["data"][0] | {"account_id": None} == {
        "account_id": None, "account_code": "cash", "currency": "USD", "balance": 350,
    }  # fmt: skip
    rest = api.get("/v1/balances", key=ledger.read_key,
                   query_string={"at": at, "cursor": first["next_cursor"]}).get_json()  # fmt: skip
    assert [(b["account_code"], b["balance"]) for b in rest["data"]] == [("equity", 350)]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "query", [{"at": "yesterday"}, {"at": "2026-12-01"}, {"at": "2026-12-01T10:00:00"},
              {"at": "2026-12-01T10:00:00Z", "as_of": "2026-11-30"}],
)  # fmt: skip
def test_a_bad_instant_is_a_validation_error(api, ledger, history, query):
    response = api.get("/v1/balances", key=ledger.read_key, query_string=query)
    assert (
        response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error"
    )
    one = api.get("/v1/accounts/cash/balance", key=ledger.read_key,
                  query_string={"at": query["at"]})  # fmt: skip
    if "as_of" not in query:
        assert one.status_code == 422


def test_balance_at_needs_an_instant_a_key_and_an_account_of_this_ledger(
    api, ledger, other_ledger, history
):
    assert api.get("/v1/accounts/cash/balance", key=ledger.read_key).status_code == 422
    at = history[-1]["created_at"]
    assert balance_at(api, other_ledger, "cash", at).status_code == 404
    assert balance_at(api, ledger, str(uuid.uuid4()), at).status_code == 404
    assert api.get("/v1/accounts/cash/balance", query_string={"at": at}).status_code == 401


def test_pending_entries_do_not_move_the_balance_at_any_instant(api, ledger, history):
    held = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                    json={"status": "pending", "postings": [
                        {"account": "equity", "direction": "debit", "amount": 7},
                        {"account": "cash", "direction": "credit", "amount": 7}]})  # fmt: skip
    assert held.status_code == 201
    later = _instant(held.get_json()["created_at"], plus_us=1)
    assert balance_at(api, ledger, "cash", later).get_json()["balance"] == 390
