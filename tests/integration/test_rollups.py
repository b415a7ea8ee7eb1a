"""`GET /v1/rollups?prefix=P[&at=|&as_of=]` (SPEC §3.5): the trial-balance columns summed per
currency over the accounts whose code starts with P, through the real query function."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from arus.jobs import close
from arus.ledger.commands import today_utc

from tests.support.errors import error_code
from tests.support.ledgers import age_ledger

YESTERDAY = today_utc() - dt.timedelta(days=1)


def _rollup(api, ledger, **query: str):
    response = api.get("/v1/rollups", key=ledger.read_key, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def tree(api, ledger):
    """wallet:ana and wallet:ana:savings (liabilities), wallet:bo (a liability in debit),
    walletx (not under wallet:), bank:usd and bank:eur (assets), fx:eur-equity (equity)."""
    api.account(ledger, "bank:usd", allow_negative=True)
    api.account(ledger, "bank:eur", currency="EUR", allow_negative=True)
    api.account(ledger, "fx:eur-equity", "equity", currency="EUR", allow_negative=True)
    for code in ("wallet:ana", "wallet:ana:savings", "wallet:bo", "walletx"):
        api.account(ledger, code, "liability", allow_negative=True)
    api.account(ledger, "wallet:eur", "liability", currency="EUR", allow_negative=True)
    for debit, credit, amount in (
        ("bank:usd", "wallet:ana", 700),
        ("bank:usd", "wallet:ana:savings", 300),
        ("wallet:bo", "bank:usd", 40),  # bo overdrawn: a liability with a debit balance
        ("bank:usd", "walletx", 5),
        ("bank:eur", "wallet:eur", 90),
        ("fx:eur-equity", "bank:eur", 10),
    ):
        assert api.transfer(ledger, debit, credit, amount).status_code == 201
    return ledger


def test_a_prefix_sums_the_trial_balance_columns_of_its_subtree(api, tree):
    assert _rollup(api, tree, prefix="wallet:") == {
        "prefix": "wallet:",
        "accounts": 4,
        "totals": [
            {"currency": "EUR", "debit": 0, "credit": 90},
            {"currency": "USD", "debit": 40, "credit": 1_000},
        ],
    }
    assert _rollup(api, tree, prefix="wallet:ana")["totals"] == [
        {"currency": "USD", "debit": 0, "credit": 1_000}
    ]
    assert _rollup(api, tree, prefix="wallet:ana:")["totals"] == [
        {"currency": "USD", "debit": 0, "credit": 300}
    ]
    # Without the colon, `wallet` is a plain prefix of codes: walletx too.
    assert _rollup(api, tree, prefix="wallet")["accounts"] == 5
    assert _rollup(api, tree, prefix="bank:usd") == {
        "prefix": "bank:usd",
        "accounts": 1,
        "totals": [{"currency": "USD", "debit": 965, "credit": 0}],
    }


def test_every_account_of_the_ledger_rolls_up_to_the_trial_balance(api, tree):
    trial = api.get("/v1/trial-balance", key=tree.read_key).get_json()
    everything = [_rollup(api, tree, prefix=first) for first in ("bank", "fx", "wallet")]
    totals: dict[str, dict[str, int]] = {}
    for rollup in everything:
        for total in rollup["totals"]:
            into = totals.setdefault(total["currency"], {"debit": 0, "credit": 0})
            into["debit"] += total["debit"]
            into["credit"] += total["credit"]
    assert [{"currency": c, **t} for c, t in sorted(totals.items())] == trial["totals"]
    assert sum(r["accounts"] for r in everything) == len(trial["accounts"]) == 8


def test_a_prefix_that_matches_nothing_has_no_accounts_and_no_totals(api, tree):
    for prefix in ("nobody", "wallet:zz", "wallet:ana:savings:", "Wallet:"):
        assert _rollup(api, tree, prefix=prefix) == {"prefix": prefix, "accounts": 0,
                                                     "totals": []}  # fmt: skip


def test_underscore_and_percent_are_not_wildcards(api, ledger):
    for code in ("a_b:1", "axb:1", "a%b", "ab"):
        if "%" in code:
            continue  # no code can hold a %
        api.account(ledger, code, allow_negative=True)
    api.account(ledger, "src", "equity", allow_negative=True)
    assert api.transfer(ledger, "axb:1", "src", 7).status_code == 201
    assert api.transfer(ledger, "a_b:1", "src", 3).status_code == 201
    assert _rollup(api, ledger, prefix="a_b") == {
        "prefix": "a_b", "accounts": 1, "totals": [{"currency": "USD", "debit": 3, "credit": 0}],
    }  # fmt: skip
    assert _rollup(api, ledger, prefix="a_")["accounts"] == 1
    for pattern in ("a%", "%", "a*"):
        response = api.get("/v1/rollups", key=ledger.read_key, query_string={"prefix": pattern})
        assert response.status_code == 422 and error_code(response) == "validation_error"
        assert "wildcards" in response.get_json()["error"]["message"]


def test_at_an_instant_before_after_and_between_postings(api, ledger):
    api.account(ledger, "pool:a", "liability", allow_negative=True)
    api.account(ledger, "pool:b", "liability", allow_negative=True)
    api.account(ledger, "cash", allow_negative=True)
    before_accounts = _now()
    time.sleep(0.002)
    assert api.transfer(ledger, "cash", "pool:a", 100).status_code == 201
    between = _now()
    time.sleep(0.002)
    assert api.transfer(ledger, "pool:b", "cash", 30).status_code == 201
    after = _now()
    usd = lambda debit, credit: [{"currency": "USD", "debit": debit, "credit": credit}]  # noqa: E731
    assert _rollup(api, ledger, prefix="pool:", at=between) == {
        "prefix": "pool:", "accounts": 2, "totals": usd(0, 100), "at": between,
    }  # fmt: skip
    assert _rollup(api, ledger, prefix="pool:", at=after)["totals"] == usd(30, 100)
    assert _rollup(api, ledger, prefix="pool:")["totals"] == usd(30, 100)
    # Before the first posting the accounts existed, with nothing on them.
    assert _rollup(api, ledger, prefix="pool:", at=before_accounts)["totals"] == usd(0, 0)
    # Before the accounts existed: none of them.
    long_ago = "2001-01-01T00:00:00Z"
    assert _rollup(api, ledger, prefix="pool:", at=long_ago) == {
        "prefix": "pool:", "accounts": 0, "totals": [], "at": "2001-01-01T00:00:00.000000Z",
    }  # fmt: skip


def test_as_of_a_closed_day_reads_its_snapshot_and_an_open_day_is_404(api, engine, tree):
    age_ledger(engine, tree.ledger_id, days=1)  # the postings above: created and dated yesterday
    report = close.close_ledger(engine, tree.ledger_id, YESTERDAY)
    assert report["ok"], report
    assert api.transfer(tree, "bank:usd", "wallet:ana", 1_000_000).status_code == 201
    closed = _rollup(api, tree, prefix="wallet:", as_of=YESTERDAY.isoformat())
    assert closed == {
        "prefix": "wallet:",
        "accounts": 4,
        "totals": [
            {"currency": "EUR", "debit": 0, "credit": 90},
            {"currency": "USD", "debit": 40, "credit": 1_000},
        ],
        "as_of": YESTERDAY.isoformat(),
    }
    assert _rollup(api, tree, prefix="wallet:")["totals"][1]["credit"] == 1_001_000
    nothing = _rollup(api, tree, prefix="nobody", as_of=YESTERDAY.isoformat())
    assert nothing["accounts"] == 0 and nothing["totals"] == []
    for day in (today_utc(), YESTERDAY - dt.timedelta(days=1)):
        query = {"prefix": "wallet:", "as_of": day.isoformat()}
        response = api.get("/v1/rollups", key=tree.read_key, query_string=query)
        assert response.status_code == 404 and error_code(response) == "not_found"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"prefix": ""},
        {"prefix": "a" * 65},
        {"prefix": "wallet:\x00"},
        {"prefix": "wallet :"},
        {"prefix": "wallet:", "at": "2026-01-01T00:00:00Z", "as_of": "2026-01-01"},
        {"prefix": "wallet:", "at": "yesterday"},
        {"prefix": "wallet:", "as_of": "2026-02-30"},
        {"prefix": "wallet:", "limit": "5"},
        [("prefix", "a"), ("prefix", "b")],
    ],
)
def test_bad_queries_are_422(api, ledger, query):
    response = api.get("/v1/rollups", key=ledger.read_key, query_string=query)
    assert response.status_code == 422, response.get_json()
    assert error_code(response) == "validation_error"


def test_a_rollup_sees_only_the_keys_ledger(api, tree, other_ledger):
    api.account(other_ledger, "wallet:zed", "liability", allow_negative=True)
    api.account(other_ledger, "cash", allow_negative=True)
    assert api.transfer(other_ledger, "cash", "wallet:zed", 5).status_code == 201
    assert _rollup(api, tree, prefix="wallet:zed")["accounts"] == 0
    assert _rollup(api, other_ledger, prefix="wallet:")["accounts"] == 1
    assert api.get("/v1/rollups", query_string={"prefix": "wallet:"}).status_code == 401
    bad = api.get("/v1/rollups", key="arus_0123456789abcdef_" + "x" * 43,
                  query_string={"prefix": ""})  # fmt: skip
    assert bad.status_code == 401  # the key is judged before the query


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
