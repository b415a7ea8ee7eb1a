"""Cross-ledger isolation: the ledger comes from the key; another ledger's objects are absent."""

from __future__ import annotations

import pytest


@pytest.fixture
def theirs(api, other_ledger):
    """Another tenant's books: an account and an entry a caller must never reach."""
    api.account(other_ledger, "cash")
    api.account(other_ledger, "equity", "equity", allow_negative=True)
    api.account(other_ledger, "secret-only-there")
    entry = api.transfer(other_ledger, "cash", "equity", 999).get_json()
    account = api.get("/v1/accounts/cash", key=other_ledger.read_key).get_json()
    return {"entry": entry, "account": account}


@pytest.fixture
def mine(api, ledger):
    api.account(ledger, "cash")
    api.account(ledger, "equity", "equity", allow_negative=True)
    return ledger


def _not_found(response) -> bool:
    return response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_other_ledgers_account_is_not_found_by_id(api, mine, theirs):
    assert _not_found(api.get(f"/v1/accounts/{theirs['account']['id']}", key=mine.read_key))


def test_other_ledgers_account_code_is_not_found(api, mine, theirs):
    assert _not_found(api.get("/v1/accounts/secret-only-there", key=mine.read_key))


def test_same_code_resolves_to_own_account(api, mine, theirs):
    own = api.get("/v1/accounts/cash", key=mine.read_key).get_json()
    assert own["id"] != theirs["account"]["id"] and own["balance"] == 0


def test_other_ledgers_account_postings_are_not_found(api, mine, theirs):
    path = f"/v1/accounts/{theirs['account']['id']}/postings"
    assert _not_found(api.get(path, key=mine.read_key))


def test_other_ledgers_entry_is_not_found(api, mine, theirs):
    assert _not_found(api.get(f"/v1/entries/{theirs['entry']['id']}", key=mine.read_key))


def test_other_ledgers_entry_cannot_be_reversed(api, mine, theirs, other_ledger):
    path = f"/v1/entries/{theirs['entry']['id']}/reverse"
    assert _not_found(api.post(path, key=mine.write_key, idempotency_key="x", json={}))
    shown = api.get(f"/v1/entries/{theirs['entry']['id']}", key=other_ledger.read_key)
    assert shown.get_json()["reversed_by"] is None


def test_entry_cannot_post_to_other_ledgers_account(api, mine, theirs, other_ledger):
    body = {"postings": [
        {"account": theirs["account"]["id"], "direction": "debit", "amount": 5},
        {"account": "equity", "direction": "credit", "amount": 5},
    ]}  # fmt: skip
    response = api.post("/v1/entries", key=mine.write_key, idempotency_key="x", json=body)
    assert response.status_code == 422
    assert "no such account" in response.get_json()["error"]["message"]
    theirs_now = api.get("/v1/accounts/cash", key=other_ledger.read_key).get_json()
    assert theirs_now["balance"] == 999


def test_lists_and_trial_balance_show_only_own_ledger(api, mine, theirs):
    codes = {a["code"] for a in api.get("/v1/accounts", key=mine.read_key).get_json()["data"]}
    assert codes == {"cash", "equity"}
    assert api.get("/v1/entries", key=mine.read_key).get_json()["data"] == []
    trial = api.get("/v1/trial-balance", key=mine.read_key).get_json()
    assert {a["account_code"] for a in trial["accounts"]} == {"cash", "equity"}
    assert trial["totals"] == [{"currency": "USD", "debit": 0, "credit": 0}]


def test_idempotency_keys_are_scoped_per_ledger(api, mine, theirs, other_ledger):
    # The same key in two ledgers is two different requests, never a replay across tenants.
    first = api.transfer(other_ledger, "cash", "equity", 1, key="shared-key")
    second = api.transfer(mine, "cash", "equity", 1, key="shared-key")
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]


def test_balances_as_of_is_scoped(api, mine, theirs):
    # Neither ledger has a close for this date; another ledger's close must not leak either.
    response = api.get("/v1/balances", key=mine.read_key, query_string={"as_of": "2020-01-01"})
    assert _not_found(response)
