"""Filtered reads (SPEC §3): entries by account, effective dates, status and metadata; accounts by
type, currency and metadata; AND-combined and cursor-paginated."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from arus.ledger.commands import today_utc

TODAY = today_utc()
TOMORROW = TODAY + dt.timedelta(days=1)


@pytest.fixture
def books(api, ledger):
    """Three accounts, five entries over two dates with metadata, one hold, one voided hold."""
    for code, type_, currency in (("cash", "asset", "USD"), ("bank", "asset", "USD"),
                                  ("sales", "revenue", "USD"), ("eur", "asset", "EUR"),
                                  ("eur-sales", "revenue", "EUR")):  # fmt: skip
        response = api.post("/v1/accounts", key=ledger.write_key, json={
            "code": code, "name": code, "type": type_, "currency": currency,
            "allow_negative": True, "metadata": {"team": "ops" if code != "bank" else "treasury"},
        })  # fmt: skip
        assert response.status_code == 201

    def entry(debit, credit, amount, day, order, status="posted", **metadata):
        response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                            json={"status": status, "effective_date": day.isoformat(),
                                  "metadata": {"order": order, **metadata},
                                  "postings": [
                                      {"account": debit, "direction": "debit", "amount": amount},
                                      {"account": credit, "direction": "credit", "amount": amount},
                                  ]})  # fmt: skip
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    made = {
        "a": entry("cash", "sales", 10, TODAY, "A", batch="1"),
        "b": entry("bank", "sales", 20, TODAY, "B"),
        "c": entry("cash", "sales", 30, TOMORROW, "C"),
        "d": entry("eur", "eur-sales", 40, TOMORROW, "D", batch="1"),
        "e": entry("cash", "bank", 50, TOMORROW, "E"),
        "held": entry("bank", "cash", 5, TOMORROW, "H", status="pending"),
        "voided": entry("cash", "bank", 6, TODAY, "V", status="pending"),
    }
    voided = api.post(f"/v1/entries/{made['voided']['id']}/void", key=ledger.write_key,
                      idempotency_key=uuid.uuid4().hex, json={})  # fmt: skip
    assert voided.status_code == 200
    return made


def ids(api, ledger, path, **query):
    response = api.get(path, key=ledger.read_key, query_string=query)
    assert response.status_code == 200, response.get_json()
    return [item.get("metadata", {}).get("order") or item["code"] for item in
            response.get_json()["data"]]  # fmt: skip


def test_entries_by_account_include_its_holds(api, ledger, books):
    assert ids(api, ledger, "/v1/entries", account="cash") == ["V", "H", "E", "C", "A"]
    by_id = ids(api, ledger, "/v1/entries", account=books["a"]["postings"][0]["account_id"])
    assert by_id == ["V", "H", "E", "C", "A"]
    assert ids(api, ledger, "/v1/entries", account="nobody") == []


def test_entries_by_effective_date_range(api, ledger, books):
    today, tomorrow = TODAY.isoformat(), TOMORROW.isoformat()
    assert ids(api, ledger, "/v1/entries", effective_from=tomorrow) == ["H", "E", "D", "C"]
    assert ids(api, ledger, "/v1/entries", effective_to=today) == ["V", "B", "A"]
    assert ids(api, ledger, "/v1/entries", effective_from=today, effective_to=today) == [
        "V", "B", "A",
    ]  # fmt: skip


def test_entries_by_status(api, ledger, books):
    assert ids(api, ledger, "/v1/entries", status="pending") == ["H"]
    assert ids(api, ledger, "/v1/entries", status="voided") == ["V"]
    assert ids(api, ledger, "/v1/entries", status="posted") == ["E", "D", "C", "B", "A"]
    assert ids(api, ledger, "/v1/entries", status="expired") == []


def test_entries_by_metadata_and_every_filter_combined(api, ledger, books):
    assert ids(api, ledger, "/v1/entries", **{"metadata.batch": "1"}) == ["D", "A"]
    assert ids(api, ledger, "/v1/entries", **{"metadata.batch": "1", "metadata.order": "A"}) == [
        "A"
    ]
    combined = {"account": "cash", "effective_from": TOMORROW.isoformat(), "status": "posted",
                "metadata.order": "C"}  # fmt: skip
    assert ids(api, ledger, "/v1/entries", **combined) == ["C"]
    assert ids(api, ledger, "/v1/entries", **{"metadata.order": "nothing"}) == []


def test_filters_keep_cursor_pagination(api, ledger, books):
    seen, cursor = [], None
    while True:
        query = {"account": "cash", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/entries", key=ledger.read_key, query_string=query).get_json()
        seen += [e["metadata"]["order"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["V", "H", "E", "C", "A"]


def test_accounts_by_type_currency_and_metadata(api, ledger, books):
    assert ids(api, ledger, "/v1/accounts", type="revenue") == ["eur-sales", "sales"]
    assert ids(api, ledger, "/v1/accounts", currency="EUR") == ["eur", "eur-sales"]
    assert ids(api, ledger, "/v1/accounts", **{"metadata.team": "treasury"}) == ["bank"]
    both = {"type": "asset", "currency": "USD", "metadata.team": "ops"}
    assert ids(api, ledger, "/v1/accounts", **both) == ["cash"]
    assert ids(api, ledger, "/v1/accounts", type="asset", limit=1) == ["bank"]


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/v1/entries", {"status": "done"}, "status must be one of"),
        ("/v1/entries", {"effective_from": "2026-1-1"}, "YYYY-MM-DD"),
        ("/v1/entries", {"effective_from": "2026-12-02", "effective_to": "2026-12-01"}, "after"),
        ("/v1/entries", {"stauts": "posted"}, "unknown query parameter stauts"),
        ("/v1/entries", {"metadata.": "x"}, "metadata key"),
        ("/v1/accounts", {"type": "cash"}, "type must be one of"),
        ("/v1/accounts", {"currency": "usd"}, "three upper-case letters"),
        ("/v1/accounts", {f"metadata.k{i}": "v" for i in range(11)}, "at most 10"),
    ],
)
def test_bad_filters_are_validation_errors_after_the_key_check(api, ledger, path, query, message):
    response = api.get(path, key=ledger.read_key, query_string=query)
    assert response.status_code == 422, response.get_json()
    assert message in response.get_json()["error"]["message"]
    assert api.get(path, key="arus_0000000000000000_" + "x" * 43,
                   query_string=query).status_code == 401  # fmt: skip


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/v1/entries", b"metadata.order=%00", "query parameter metadata.order contains a NUL"),
        ("/v1/entries", b"metadata.order=A%00", "query parameter metadata.order contains a NUL"),
        ("/v1/accounts", b"metadata.team=%00", "query parameter metadata.team contains a NUL"),
        ("/v1/entries", b"account=%00", "query parameter account contains a NUL"),
        # A lone surrogate as a client can send one: the bytes it would encode to.
        ("/v1/entries", b"metadata.order=%ED%A0%80", "metadata.order is not valid UTF-8"),
        ("/v1/entries", b"status=%FF", "query parameter status is not valid UTF-8"),
        ("/v1/accounts", b"currency=\xff", "query parameter currency is not valid UTF-8"),
        ("/v1/entries", b"metadata.%FF=x", "name is not valid UTF-8: metadata.\\xff"),
        ("/v1/entries", b"metadata.%00=x", "name contains a NUL character: metadata.\\x00"),
    ],
)
def test_a_filter_that_is_not_text_is_a_validation_error(api, ledger, path, query, message):
    raw = {"QUERY_STRING": query.decode("latin-1")}  # the bytes as a server passes them on
    response = api.get(path, key=ledger.read_key, environ_overrides=raw)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and message in error["message"], error
    unknown = "arus_0000000000000000_" + "x" * 43
    assert api.get(path, key=unknown, environ_overrides=raw).status_code == 401


def test_a_filter_given_twice_is_refused(api, ledger):
    response = api.get("/v1/entries?status=posted&status=pending", key=ledger.read_key)
    assert response.status_code == 422
    assert "given twice" in response.get_json()["error"]["message"]


def test_filters_never_cross_ledgers(api, ledger, other_ledger, books):
    assert ids(api, other_ledger, "/v1/entries", account="cash") == []
    assert ids(api, other_ledger, "/v1/accounts", type="revenue") == []
