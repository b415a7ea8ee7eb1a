"""`GET /v1/accounts/{id-or-code}/statement?from=&to=` (SPEC §3.5): an account's postings by
effective date with running balances, in JSON and CSV, a page at a time, through the real query
function."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from arus.ledger.commands import today_utc
from arus.ledger.reads import encode_cursor

from tests.support.errors import error_code

TODAY = today_utc()


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def _post(api, ledger, debit: str, credit: str, amount: int, effective: str, **extra):
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
        json={"postings": [{"account": debit, "direction": "debit", "amount": amount},
                           {"account": credit, "direction": "credit", "amount": amount}],
              "effective_date": effective, **extra},
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _statement(api, ledger, ref: str, **query):
    response = api.get(f"/v1/accounts/{ref}/statement", key=ledger.read_key, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def books(api, ledger):
    """cash (asset) and sales (revenue); entries posted out of date order: the one dated -5 is
    posted last (back-dated), so ledger_seq and effective date disagree."""
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "sales", "revenue", allow_negative=True)
    seqs = {}
    for name, debit, credit, amount, offset in (
        ("d-3", "cash", "sales", 100, -3),
        ("d-1", "cash", "sales", 40, -1),
        ("refund-d-3", "sales", "cash", 15, -3),
        ("d-10", "cash", "sales", 1_000, -10),
        ("d0", "cash", "sales", 7, 0),
        ("d-5", "cash", "sales", 3, -5),  # back-dated, posted after everything above
    ):
        seqs[name] = _post(api, ledger, debit, credit, amount, day(offset),
                           description=name)["ledger_seq"]  # fmt: skip
    return ledger, seqs


def test_lines_are_in_effective_date_order_with_running_balances(api, books):
    ledger, seqs = books
    statement = _statement(api, ledger, "cash", **{"from": day(-5), "to": day(-1)})
    assert statement["from"] == day(-5) and statement["to"] == day(-1)
    assert statement["opening_balance"] == 1_000  # dated -10: before from
    assert [(line["description"], line["effective_date"], line["direction"], line["amount"],
             line["balance"]) for line in statement["lines"]] == [
        ("d-5", day(-5), "debit", 3, 1_003),
        ("d-3", day(-3), "debit", 100, 1_103),
        ("refund-d-3", day(-3), "credit", 15, 1_088),
        ("d-1", day(-1), "debit", 40, 1_128),
    ]  # fmt: skip
    assert [line["ledger_seq"] for line in statement["lines"]] == [
        seqs["d-5"],
        seqs["d-3"],
        seqs["refund-d-3"],
        seqs["d-1"],
    ]
    assert statement["closing_balance"] == 1_128 and statement["next_cursor"] is None
    line = statement["lines"][0]
    assert set(line) == {"entry_id", "ledger_seq", "effective_date", "description", "direction",
                         "amount", "currency", "balance"} and line["currency"] == "USD"  # fmt: skip


def test_a_credit_normal_account_reads_its_balance_on_the_credit_side(api, books):
    ledger, _ = books
    statement = _statement(api, ledger, "sales", **{"from": day(-3), "to": day(-3)})
    assert statement["opening_balance"] == 1_003  # 1,000 and 3, credited
    assert [(line["direction"], line["balance"]) for line in statement["lines"]] == [
        ("credit", 1_103), ("debit", 1_088)
    ]  # fmt: skip
    assert statement["closing_balance"] == 1_088


def test_through_today_the_closing_balance_is_the_accounts_balance(api, books):
    ledger, _ = books
    account = api.get("/v1/accounts/cash", key=ledger.read_key).get_json()
    statement = _statement(api, ledger, account["id"], **{"from": day(-30), "to": day(0)})
    assert statement["account_id"] == account["id"]
    assert statement["opening_balance"] == 0 and len(statement["lines"]) == 6
    assert statement["closing_balance"] == account["balance"] == 1_135
    assert statement["lines"][-1]["balance"] == 1_135


def test_pages_continue_the_running_balance_and_repeat_the_closing(api, books):
    ledger, _ = books
    whole = _statement(api, ledger, "cash", **{"from": day(-10), "to": day(0)})
    lines, cursor, pages = [], None, 0
    while True:
        query = {"from": day(-10), "to": day(0), "limit": "2"}
        if cursor is not None:
            query["cursor"] = cursor
        page = _statement(api, ledger, "cash", **query)
        pages += 1
        assert page["opening_balance"] == whole["opening_balance"]
        assert page["closing_balance"] == whole["closing_balance"]
        assert len(page["lines"]) <= 2
        lines += page["lines"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and lines == whole["lines"]


def test_a_back_dated_entry_between_pages_is_in_the_next_pages_balances(api, books):
    ledger, _ = books
    query = {"from": day(-10), "to": day(0), "limit": "3"}
    first = _statement(api, ledger, "cash", **query)
    _post(api, ledger, "cash", "sales", 500, day(-7))  # before the first page's end
    second = _statement(api, ledger, "cash", **query, cursor=first["next_cursor"])
    # Computed from the journal, not carried in the cursor: the last line is the closing.
    assert second["next_cursor"] is None
    assert second["lines"][-1]["balance"] == second["closing_balance"] == 1_635
    assert (
        first["lines"][-1]["balance"]
        + 500
        + sum(
            line["amount"] if line["direction"] == "debit" else -line["amount"]
            for line in second["lines"]
        )
        == second["closing_balance"]
    )


def test_pending_entries_are_not_lines_until_they_are_posted(api, books):
    ledger, _ = books
    hold = _post(api, ledger, "cash", "sales", 9, day(-1), status="pending")
    statement = _statement(api, ledger, "cash", **{"from": day(-30), "to": day(0)})
    assert hold["id"] not in {line["entry_id"] for line in statement["lines"]}
    assert statement["closing_balance"] == 1_135
    posted = api.post(f"/v1/entries/{hold['id']}/post", key=ledger.write_key,
                      idempotency_key=uuid.uuid4().hex, json={})  # fmt: skip
    assert posted.status_code == 201, posted.get_json()
    after = _statement(api, ledger, "cash", **{"from": day(-30), "to": day(0)})
    capture = posted.get_json()
    assert [line["entry_id"] for line in after["lines"]].count(capture["id"]) == 1
    assert after["closing_balance"] == 1_144


def test_an_empty_range_has_no_lines_and_equal_opening_and_closing(api, books):
    ledger, _ = books
    statement = _statement(api, ledger, "cash", **{"from": day(-9), "to": day(-6)})
    assert statement["lines"] == [] and statement["next_cursor"] is None
    assert statement["opening_balance"] == statement["closing_balance"] == 1_000
    fresh = api.account(ledger, "unused")
    empty = _statement(api, ledger, fresh["id"], **{"from": day(-1), "to": day(0)})
    assert empty["opening_balance"] == empty["closing_balance"] == 0 and empty["lines"] == []


def test_csv_carries_the_lines_and_the_rest_in_headers(api, books):
    ledger, _ = books
    _post(api, ledger, "cash", "sales", 1, day(-2), description='=HYPERLINK("x")')
    query = {"from": day(-5), "to": day(-1), "limit": "3"}
    json_page = _statement(api, ledger, "cash", **query)
    response = api.get("/v1/accounts/cash/statement", key=ledger.read_key, query_string=query,
                       headers={"Accept": "text/csv"})  # fmt: skip
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.headers["Vary"] == "Accept"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["entry_id", "ledger_seq", "effective_date", "description", "direction",
                       "amount", "currency", "balance"]  # fmt: skip
    assert rows[1:] == [[str(line[f]) for f in rows[0]] for line in json_page["lines"]]
    assert response.headers["X-Opening-Balance"] == str(json_page["opening_balance"])
    assert response.headers["X-Closing-Balance"] == str(json_page["closing_balance"])
    assert response.headers["X-Account-Id"] == json_page["account_id"]
    assert response.headers["X-Statement-From"] == day(-5)
    assert response.headers["X-Statement-To"] == day(-1)
    cursor = response.headers["X-Next-Cursor"]
    rest = api.get(
        "/v1/accounts/cash/statement",
        key=ledger.read_key,
        query_string={**query, "cursor": cursor},
        headers={"Accept": "text/csv"},
    )
    rest_rows = list(csv.reader(io.StringIO(rest.get_data(as_text=True))))
    assert "X-Next-Cursor" not in rest.headers and len(rest_rows) == 1 + 2
    assert rest_rows[-1][-1] == rest.headers["X-Closing-Balance"] == "1129"
    # A description a spreadsheet would run as a formula is neutralised.
    assert ['\'=HYPERLINK("x")'] == [r[3] for r in rest_rows[1:] if "HYPERLINK" in r[3]]
    # JSON unless text/csv is preferred.
    for accept in ("*/*", "application/json", "text/csv;q=0.5, application/json"):
        answer = api.get("/v1/accounts/cash/statement", key=ledger.read_key, query_string=query,
                         headers={"Accept": accept})  # fmt: skip
        assert answer.mimetype == "application/json", accept


def test_unknown_accounts_and_other_ledgers_accounts_are_404(api, books, other_ledger):
    ledger, _ = books
    other = api.account(other_ledger, "cash")
    span = {"from": day(-1), "to": day(0)}
    for ref in ("nobody", other["id"], str(uuid.uuid4()), "bad code"):
        response = api.get(f"/v1/accounts/{ref}/statement", key=ledger.read_key,
                           query_string=span)  # fmt: skip
        assert response.status_code == 404 and error_code(response) == "not_found", ref
    assert api.get("/v1/accounts/cash/statement", query_string=span).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"from": day(-1)},
        {"to": day(-1)},
        {"from": day(0), "to": day(-1)},
        {"from": "2026-13-01", "to": "2026-12-31"},
        {"from": "yesterday", "to": day(0)},
        {"from": day(-366), "to": day(0)},  # 367 days with both ends
        {"from": day(-1), "to": day(0), "limit": "0"},
        {"from": day(-1), "to": day(0), "limit": "501"},
        {"from": day(-1), "to": day(0), "cursor": "not-a-cursor"},
        {"from": day(-1), "to": day(0), "cursor": encode_cursor({"code": "x"})},
        {"from": day(-1), "to": day(0), "other": "1"},
        [("from", day(-1)), ("from", day(-1)), ("to", day(0))],
        {"from": day(-1) + "\x00", "to": day(0)},
    ],
)
def test_bad_queries_are_422(api, books, query):
    ledger, _ = books
    response = api.get("/v1/accounts/cash/statement", key=ledger.read_key, query_string=query)
    assert response.status_code == 422, response.get_json()
    assert error_code(response) == "validation_error"


def test_a_year_of_366_days_is_one_statement(api, books):
    ledger, _ = books
    statement = _statement(api, ledger, "cash", **{"from": day(-365), "to": day(0)})
    assert statement["closing_balance"] == 1_135 and len(statement["lines"]) == 6


def test_a_cursor_serves_only_the_statement_that_returned_it(api, books):
    ledger, _ = books
    api.account(ledger, "cash2", allow_negative=True)
    for _ in range(3):
        _post(api, ledger, "cash2", "sales", 1, day(-1))
    query = {"from": day(-10), "to": day(0), "limit": "1"}
    cursor = _statement(api, ledger, "cash", **query)["next_cursor"]
    assert _statement(api, ledger, "cash", **query, cursor=cursor)["lines"]
    for ref, changed in (("cash2", {}), ("cash", {"to": day(-1)}), ("cash", {"from": day(-9)})):
        response = api.get(f"/v1/accounts/{ref}/statement", key=ledger.read_key,
                           query_string={**query, **changed, "cursor": cursor})  # fmt: skip
        assert response.status_code == 422 and error_code(response) == "validation_error", ref
