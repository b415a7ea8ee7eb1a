"""The client covers the API: a method for every operationId of the served OpenAPI document
(operations and jobs routes aside: they are not a ledger's API), batches and balances at an
instant included."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from arus.web import openapi
from arus.web.app import create_app
from arus_client.client import ArusClient, BatchEntry, NewPosting, ValidationError

# operationId -> the client method that calls it.
METHODS = {
    "createAccount": "create_account",
    "listAccounts": "list_accounts",
    "getAccount": "get_account",
    "accountPostings": "account_postings",
    "accountBalanceAt": "balance_at",
    "postEntry": "post_entry",
    "listEntries": "list_entries",
    "postBatch": "post_batch",
    "getEntry": "get_entry",
    "reverseEntry": "reverse_entry",
    "postPending": "post_pending",
    "voidPending": "void_pending",
    "trialBalance": "trial_balance",
    "balances": ("balances_as_of", "balances_at"),
    "listCloses": "list_closes",
    "getClose": "get_close",
    "rollup": "rollup",
    "accountStatement": ("statement", "statement_csv"),
}


def test_every_operation_has_a_client_method():
    document = openapi.document()
    operations = {
        op["operationId"]
        for path in document["paths"].values()
        for op in path.values()
        if not {"operations", "jobs"} & set(op.get("tags", []))
    }
    assert operations == set(METHODS), "map each new operationId to the client method for it"
    for names in METHODS.values():
        for name in (names,) if isinstance(names, str) else names:
            assert callable(getattr(ArusClient, name, None)), f"ArusClient.{name} is missing"


@pytest.fixture
def client(app_settings, ledger):
    transport = httpx.WSGITransport(app=create_app(app_settings))
    with ArusClient("http://arus.test", ledger.write_key, transport=transport) as arus:
        arus.create_account(code="cash", name="Cash", type="asset", currency="USD",
                            allow_negative=True)  # fmt: skip
        arus.create_account(code="wallet", name="Wallet", type="liability", currency="USD")
        yield arus


def _move(amount: int) -> list[NewPosting]:
    return [NewPosting("cash", "debit", amount), NewPosting("wallet", "credit", amount)]


def test_post_batch_answers_each_entry_and_replays_a_repeat(client):
    paid = BatchEntry(_move(10), description="in")
    overdraft = BatchEntry([NewPosting("wallet", "debit", 99), NewPosting("cash", "credit", 99)])
    results = client.post_batch([paid, overdraft])
    assert [r.status for r in results] == [201, 422]
    assert results[0].entry is not None and results[0].entry.description == "in"
    assert results[1].error_code == "insufficient_funds" and results[1].entry is None
    again = client.post_batch([paid])
    assert again[0].status == 200 and again[0].entry is not None and again[0].entry.replayed
    assert again[0].entry.id == results[0].entry.id
    with pytest.raises(ValidationError):  # atomic: the first failing entry's error is raised
        client.post_batch([BatchEntry(_move(1)), BatchEntry(_move(0))], atomic=True)


def test_balances_at_an_instant(client):
    before = dt.datetime.now(dt.UTC)
    client.post_entry(_move(25))
    then = client.balances_at(before, limit=1)
    assert [(b.account_code, b.balance) for b in then.data] == [("cash", 0)]
    assert then.next_cursor is not None
    now = client.balances_at(dt.datetime.now(dt.UTC))
    assert {b.account_code: b.balance for b in now.data} == {"cash": 25, "wallet": 25}
