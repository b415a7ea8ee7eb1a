"""Every endpoint and every error code of SPEC §3, through the real functions."""

from __future__ import annotations

import json
import uuid

import pytest
from arus.ledger.money import INT64_MAX


def _entry(debit: str, credit: str, amount: object, **extra: object) -> dict[str, object]:
    return {
        "postings": [
            {"account": debit, "direction": "debit", "amount": amount},
            {"account": credit, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


@pytest.fixture
def books(api, ledger):
    """cash (asset, no overdraft) holds 10,000 from equity (credit-normal, may go negative)."""
    cash = api.account(ledger, "cash")
    equity = api.account(ledger, "equity", "equity", allow_negative=True)
    assert api.transfer(ledger, "cash", "equity", 10_000).status_code == 201
    return {"cash": cash, "equity": equity}


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


# --- accounts -------------------------------------------------------------------------------


def test_create_account_returns_the_account_with_zero_balance(api, ledger):
    response = api.post(
        "/v1/accounts",
        key=ledger.write_key,
        json={"code": "bank:main", "name": "Main bank", "type": "asset", "currency": "EUR",
              "metadata": {"iban_last4": "1234"}},
    )  # fmt: skip
    assert response.status_code == 201
    body = response.get_json()
    assert body["code"] == "bank:main" and body["currency"] == "EUR" and body["balance"] == 0
    assert body["allow_negative"] is False and body["metadata"] == {"iban_last4": "1234"}
    assert response.headers["Location"] == f"/v1/accounts/{body['id']}"


def test_duplicate_account_code_is_conflict(api, ledger):
    api.account(ledger, "cash")
    again = api.post(
        "/v1/accounts",
        key=ledger.write_key,
        json={"code": "cash", "name": "Cash", "type": "asset", "currency": "USD"},
    )
    assert again.status_code == 409 and error_code(again) == "duplicate_account_code"


def test_account_creation_with_idempotency_key_replays(api, ledger):
    body = {"code": "fees", "name": "Fees", "type": "revenue", "currency": "USD"}
    first = api.post("/v1/accounts", key=ledger.write_key, json=body, idempotency_key="acct-1")
    second = api.post("/v1/accounts", key=ledger.write_key, json=body, idempotency_key="acct-1")
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == second.get_json()


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"name": "x", "type": "asset", "currency": "USD"}, "code"),
        ({"code": "has space", "name": "x", "type": "asset", "currency": "USD"}, "code"),
        ({"code": "a" * 65, "name": "x", "type": "asset", "currency": "USD"}, "code"),
        ({"code": str(uuid.uuid4()), "name": "x", "type": "asset", "currency": "USD"}, "UUID"),
        ({"code": "c", "name": "x", "type": "cash", "currency": "USD"}, "type"),
        ({"code": "c", "name": "x", "type": "asset", "currency": "usd"}, "currency"),
        ({"code": "c", "name": "x", "type": "asset", "currency": "US"}, "currency"),
        ({"code": "c", "name": "", "type": "asset", "currency": "USD"}, "name"),
        ({"code": "c", "name": "x", "type": "asset", "currency": "USD", "allow_negative": "no"},
         "allow_negative"),
        ({"code": "c", "name": "x", "type": "asset", "currency": "USD", "metadata": []},
         "metadata"),
        ({"code": "c", "name": "x", "type": "asset", "currency": "USD", "colour": "red"},
         "unknown"),
    ],
)  # fmt: skip
def test_invalid_account_is_validation_error(api, ledger, body, fragment):
    response = api.post("/v1/accounts", key=ledger.write_key, json=body)
    assert response.status_code == 422 and error_code(response) == "validation_error"
    assert fragment in response.get_json()["error"]["message"]


def test_get_account_by_id_and_by_code_with_balance(api, ledger, books):
    by_id = api.get(f"/v1/accounts/{books['cash']['id']}", key=ledger.read_key)
    by_code = api.get("/v1/accounts/cash", key=ledger.read_key)
    assert by_id.status_code == by_code.status_code == 200
    assert by_id.get_json() == by_code.get_json()
    assert by_id.get_json()["balance"] == 10_000
    assert api.get("/v1/accounts/equity", key=ledger.read_key).get_json()["balance"] == 10_000


def test_unknown_account_is_not_found(api, ledger):
    for ref in ("nope", str(uuid.uuid4()), "bad code!"):
        response = api.get(f"/v1/accounts/{ref}", key=ledger.read_key)
        assert response.status_code == 404 and error_code(response) == "not_found"


def test_list_accounts_paginates_by_cursor(api, ledger):
    codes = [f"acct-{i:02d}" for i in range(7)]
    for code in codes:
        api.account(ledger, code)
    seen, cursor = [], None
    for _ in range(10):
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/accounts", key=ledger.read_key, query_string=query).get_json()
        assert len(page["data"]) <= 3
        seen += [a["code"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5"])
def test_bad_limit_is_validation_error(api, ledger, limit):
    response = api.get("/v1/accounts", key=ledger.read_key, query_string={"limit": limit})
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_forged_cursor_is_validation_error(api, ledger):
    response = api.get("/v1/entries", key=ledger.read_key, query_string={"cursor": "!!nope"})
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_account_postings_newest_first_with_balance_after(api, ledger, books):
    assert api.transfer(ledger, "equity", "cash", 2_500).status_code == 201
    assert api.transfer(ledger, "cash", "equity", 100).status_code == 201
    page = api.get("/v1/accounts/cash/postings", key=ledger.read_key).get_json()
    assert [(p["direction"], p["amount"], p["balance_after"]) for p in page["data"]] == [
        ("debit", 100, 7_600),
        ("credit", 2_500, 7_500),
        ("debit", 10_000, 10_000),
    ]
    assert [p["ledger_seq"] for p in page["data"]] == [3, 2, 1]
    path = "/v1/accounts/cash/postings"
    first = api.get(path, key=ledger.read_key, query_string={"limit": 2}).get_json()
    cursor = first["next_cursor"]
    rest = api.get(path, key=ledger.read_key, query_string={"limit": 2, "cursor": cursor})
    rest = rest.get_json()
    assert [p["id"] for p in first["data"] + rest["data"]] == [p["id"] for p in page["data"]]
    assert rest["next_cursor"] is None


# --- entries --------------------------------------------------------------------------------


def test_post_entry_returns_the_entry(api, ledger, books):
    response = api.post(
        "/v1/entries",
        key=ledger.write_key,
        idempotency_key="e-1",
        json=_entry(books["equity"]["id"], "cash", 250, description="refund",
                    effective_date="2026-01-31", metadata={"order": "A-1"}),
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    entry = response.get_json()
    assert set(entry) == {
        "id", "ledger_seq", "status", "description", "effective_date", "metadata", "postings",
        "reverses", "reversed_by", "posts", "posted_by", "expires_at", "created_at",
    }  # fmt: skip
    assert entry["status"] == "posted"
    assert entry["posts"] is entry["posted_by"] is entry["expires_at"] is None
    assert entry["ledger_seq"] == 2 and entry["description"] == "refund"
    assert entry["effective_date"] == "2026-01-31" and entry["metadata"] == {"order": "A-1"}
    assert entry["postings"] == [
        {"account_id": books["equity"]["id"], "account_code": "equity", "direction": "debit",
         "amount": 250, "currency": "USD", "account_version": 2},
        {"account_id": books["cash"]["id"], "account_code": "cash", "direction": "credit",
         "amount": 250, "currency": "USD", "account_version": 2},
    ]  # fmt: skip
    assert api.get(f"/v1/entries/{entry['id']}", key=ledger.read_key).get_json() == entry


def test_replay_with_same_key_and_body_returns_original(api, ledger, books):
    body = _entry("equity", "cash", 10)
    first = api.post("/v1/entries", key=ledger.write_key, idempotency_key="k", json=body)
    replay = api.post("/v1/entries", key=ledger.write_key, idempotency_key="k", json=body)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 9_990


def test_replay_ignores_key_order_and_whitespace(api, ledger, books):
    body = _entry("equity", "cash", 10)
    first = api.post("/v1/entries", key=ledger.write_key, idempotency_key="k2", json=body)
    reordered = (
        '{"postings": [{"amount": 10, "direction": "debit", "account": "equity"}, '
        '{"amount": 10, "direction": "credit", "account": "cash"}]}'
    )
    replay = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="k2", data=reordered,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert replay.status_code == 200 and replay.get_json() == first.get_json()


def test_same_key_different_body_is_conflict(api, ledger, books):
    api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="k", json=_entry("equity", "cash", 10)
    )
    other = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="k", json=_entry("equity", "cash", 11)
    )
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"


def test_missing_idempotency_key_is_required_error(api, ledger, books):
    response = api.post("/v1/entries", key=ledger.write_key, json=_entry("equity", "cash", 1))
    assert response.status_code == 422 and error_code(response) == "idempotency_key_required"


@pytest.mark.parametrize("key", ["a" * 256, "tab\tkey", "ünïcode"])
def test_malformed_idempotency_key_is_validation_error(api, ledger, books, key):
    response = api.post(
        "/v1/entries", key=ledger.write_key, json=_entry("equity", "cash", 1),
        headers={"Idempotency-Key": key},
    )  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "validation_error"


@pytest.mark.parametrize(
    "amount", [1.5, 100.0, "100", True, False, 0, -5, None, INT64_MAX + 1, [1], {"v": 1}]
)
def test_amount_that_is_not_a_positive_int64_is_refused(api, ledger, books, amount):
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
        json=_entry("equity", "cash", amount),
    )  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_float_written_as_integer_literal_with_exponent_is_refused(api, ledger, books):
    raw = (
        '{"postings": [{"account": "equity", "direction": "debit", "amount": 1e2}, '
        '{"account": "cash", "direction": "credit", "amount": 1e2}]}'
    )
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="exp", data=raw,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_unbalanced_entry_is_refused_and_writes_nothing(api, ledger, books):
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="u",
        json={"postings": [{"account": "equity", "direction": "debit", "amount": 5},
                           {"account": "cash", "direction": "credit", "amount": 4}]},
    )  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "unbalanced_entry"
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 10_000
    entries = api.get("/v1/entries", key=ledger.read_key).get_json()["data"]
    assert len(entries) == 1


def test_entry_must_balance_per_currency(api, ledger, books):
    api.account(ledger, "eur-cash", currency="EUR", allow_negative=True)
    api.account(ledger, "eur-equity", "equity", currency="EUR", allow_negative=True)
    # Debits equal credits in total (10 == 10) but not per currency.
    mixed = {"postings": [
        {"account": "equity", "direction": "debit", "amount": 10},
        {"account": "eur-cash", "direction": "credit", "amount": 10},
    ]}  # fmt: skip
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key="m", json=mixed)
    assert response.status_code == 422 and error_code(response) == "unbalanced_entry"
    both = {"postings": [
        {"account": "equity", "direction": "debit", "amount": 10},
        {"account": "cash", "direction": "credit", "amount": 10},
        {"account": "eur-cash", "direction": "debit", "amount": 7},
        {"account": "eur-equity", "direction": "credit", "amount": 7},
    ]}  # fmt: skip
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key="m2", json=both)
    assert response.status_code == 201, response.get_json()
    assert api.get("/v1/trial-balance", key=ledger.read_key).get_json()["balanced"] is True


def test_overdraft_is_insufficient_funds_and_writes_nothing(api, ledger, books):
    response = api.transfer(ledger, "equity", "cash", 10_001)
    assert response.status_code == 422 and error_code(response) == "insufficient_funds"
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 10_000
    assert api.transfer(ledger, "equity", "cash", 10_000).status_code == 201
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 0


def test_failed_request_does_not_consume_its_idempotency_key(api, ledger, books):
    assert api.transfer(ledger, "equity", "cash", 20_000, key="retry-me").status_code == 422
    assert api.transfer(ledger, "cash", "equity", 10_000).status_code == 201
    assert api.transfer(ledger, "equity", "cash", 20_000, key="retry-me").status_code == 201


def test_posting_currency_that_differs_from_account_is_currency_mismatch(api, ledger, books):
    body = {"postings": [
        {"account": "equity", "direction": "debit", "amount": 5, "currency": "USD"},
        {"account": "cash", "direction": "credit", "amount": 5, "currency": "EUR"},
    ]}  # fmt: skip
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key="c", json=body)
    assert response.status_code == 422 and error_code(response) == "currency_mismatch"


def test_balance_overflow_is_validation_error_not_500(api, ledger):
    api.account(ledger, "big", allow_negative=True)
    api.account(ledger, "src", "equity", allow_negative=True)
    assert api.transfer(ledger, "big", "src", INT64_MAX).status_code == 201
    response = api.transfer(ledger, "big", "src", 1)
    assert response.status_code == 422 and error_code(response) == "validation_error"
    # Sums inside one entry beyond int64 are refused too.
    api.account(ledger, "a", allow_negative=True)
    api.account(ledger, "b", allow_negative=True)
    api.account(ledger, "c", "equity", allow_negative=True)
    body = {"postings": [
        {"account": "a", "direction": "debit", "amount": INT64_MAX},
        {"account": "b", "direction": "debit", "amount": INT64_MAX},
        {"account": "c", "direction": "credit", "amount": INT64_MAX},
        {"account": "c", "direction": "credit", "amount": INT64_MAX},
    ]}  # fmt: skip
    response = api.post("/v1/entries", key=ledger.write_key, idempotency_key="ovf", json=body)
    assert response.status_code == 422 and error_code(response) == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"postings": []},
        {"postings": "x"},
        {"postings": [{"account": "cash", "direction": "debit", "amount": 1}]},
        {"postings": [{"account": "cash", "direction": "debit", "amount": 1}] * 101},
        {"postings": [{"account": "cash", "direction": "up", "amount": 1},
                      {"account": "equity", "direction": "credit", "amount": 1}]},
        {"postings": [{"account": "cash", "amount": 1},
                      {"account": "equity", "direction": "credit", "amount": 1}]},
        {"postings": [{"account": 5, "direction": "debit", "amount": 1},
                      {"account": "equity", "direction": "credit", "amount": 1}]},
        {"postings": [{"account": "nope", "direction": "debit", "amount": 1},
                      {"account": "equity", "direction": "credit", "amount": 1}]},
        {"postings": [{"account": str(uuid.uuid4()), "direction": "debit", "amount": 1},
                      {"account": "equity", "direction": "credit", "amount": 1}]},
        _entry("equity", "cash", 1, effective_date="2026-02-30"),
        _entry("equity", "cash", 1, effective_date="yesterday"),
        _entry("equity", "cash", 1, description=7),
        _entry("equity", "cash", 1, description="x" * 1001),
        _entry("equity", "cash", 1, metadata="tag"),
        _entry("equity", "cash", 1, ledger_id=str(uuid.uuid4())),
        [1, 2],
    ],
)  # fmt: skip
def test_malformed_entry_is_validation_error(api, ledger, books, body):
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex, json=body
    )
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_list_entries_newest_first_with_cursor(api, ledger, books):
    for amount in (1, 2, 3, 4):
        assert api.transfer(ledger, "equity", "cash", amount).status_code == 201
    first = api.get("/v1/entries", key=ledger.read_key, query_string={"limit": 3}).get_json()
    rest = api.get(
        "/v1/entries", key=ledger.read_key,
        query_string={"limit": 3, "cursor": first["next_cursor"]},
    ).get_json()  # fmt: skip
    seqs = [e["ledger_seq"] for e in first["data"] + rest["data"]]
    assert seqs == [5, 4, 3, 2, 1] and rest["next_cursor"] is None


def test_unknown_entry_is_not_found(api, ledger):
    for ref in (str(uuid.uuid4()), "not-a-uuid"):
        response = api.get(f"/v1/entries/{ref}", key=ledger.read_key)
        assert response.status_code == 404 and error_code(response) == "not_found"


# --- reversals ------------------------------------------------------------------------------


def test_reversal_mirrors_postings_and_links_both_ways(api, ledger, books):
    original = api.transfer(ledger, "equity", "cash", 300).get_json()
    response = api.post(
        f"/v1/entries/{original['id']}/reverse", key=ledger.write_key, idempotency_key="r1",
        json={"description": "customer refund cancelled"},
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    reversal = response.get_json()
    assert reversal["reverses"] == original["id"]
    assert reversal["description"] == "customer refund cancelled"
    flipped = {"debit": "credit", "credit": "debit"}
    assert [(p["account_code"], p["direction"], p["amount"]) for p in reversal["postings"]] == [
        (p["account_code"], flipped[p["direction"]], p["amount"]) for p in original["postings"]
    ]
    shown = api.get(f"/v1/entries/{original['id']}", key=ledger.read_key).get_json()
    assert shown["reversed_by"] == reversal["id"]
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 10_000


def test_reversal_without_body_or_content_type(api, ledger, books):
    original = api.transfer(ledger, "equity", "cash", 300).get_json()
    response = api.post(f"/v1/entries/{original['id']}/reverse", key=ledger.write_key,
                        idempotency_key="r-empty")  # fmt: skip
    assert response.status_code == 201
    assert response.get_json()["description"] == f"Reversal of entry {original['ledger_seq']}"


def test_second_reversal_is_already_reversed(api, ledger, books):
    original = api.transfer(ledger, "equity", "cash", 300).get_json()
    path = f"/v1/entries/{original['id']}/reverse"
    assert api.post(path, key=ledger.write_key, idempotency_key="r1", json={}).status_code == 201
    replay = api.post(path, key=ledger.write_key, idempotency_key="r1", json={})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    again = api.post(path, key=ledger.write_key, idempotency_key="r2", json={})
    assert again.status_code == 409 and error_code(again) == "already_reversed"


def test_reversal_that_would_overdraw_is_insufficient_funds(api, ledger, books):
    deposit = api.transfer(ledger, "cash", "equity", 500).get_json()
    assert api.transfer(ledger, "equity", "cash", 10_500).status_code == 201  # cash now 0
    response = api.post(f"/v1/entries/{deposit['id']}/reverse", key=ledger.write_key,
                        idempotency_key="r", json={})  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "insufficient_funds"


def test_reversing_unknown_entry_is_not_found(api, ledger, books):
    for ref in (str(uuid.uuid4()), "nope"):
        response = api.post(f"/v1/entries/{ref}/reverse", key=ledger.write_key,
                            idempotency_key="r", json={})  # fmt: skip
        assert response.status_code == 404 and error_code(response) == "not_found"


def test_reversal_requires_idempotency_key(api, ledger, books):
    original = api.transfer(ledger, "equity", "cash", 3).get_json()
    response = api.post(f"/v1/entries/{original['id']}/reverse", key=ledger.write_key, json={})
    assert response.status_code == 422 and error_code(response) == "idempotency_key_required"


# --- trial balance --------------------------------------------------------------------------


def test_trial_balance_lists_debit_and_credit_balances_per_currency(api, ledger, books):
    api.account(ledger, "sales", "revenue")
    assert api.transfer(ledger, "cash", "sales", 700).status_code == 201
    trial = api.get("/v1/trial-balance", key=ledger.read_key).get_json()
    by_code = {a["account_code"]: a for a in trial["accounts"]}
    assert (by_code["cash"]["debit"], by_code["cash"]["credit"]) == (10_700, 0)
    assert (by_code["equity"]["debit"], by_code["equity"]["credit"]) == (0, 10_000)
    assert (by_code["sales"]["debit"], by_code["sales"]["credit"]) == (0, 700)
    assert trial["totals"] == [{"currency": "USD", "debit": 10_700, "credit": 10_700}]
    assert trial["balanced"] is True and trial["drift"] == []


def test_trial_balance_reports_injected_drift(api, ledger, books, engine):
    from tests.support.ledgers import injected_drift

    with injected_drift(engine, ":id", 1, {"id": books["cash"]["id"]}):
        trial = api.get("/v1/trial-balance", key=ledger.read_key).get_json()
    assert trial["balanced"] is False
    assert trial["drift"] == [
        {"account_id": books["cash"]["id"], "account_code": "cash", "currency": "USD",
         "materialized_balance": 10_001, "postings_balance": 10_000},
    ]  # fmt: skip


# --- authentication, authorization and transport errors --------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-key",
        "Bearer arus_0123456789abcdef_" + "A" * 43,
    ],
)
def test_missing_malformed_or_unknown_key_is_unauthenticated(api, ledger, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for response in (
        api.get("/v1/accounts", headers=dict(headers)),
        api.post("/v1/accounts", headers=dict(headers), json={}),
    ):
        assert response.status_code == 401 and error_code(response) == "unauthenticated"


def test_wrong_secret_for_a_real_key_id_is_unauthenticated(api, ledger):
    key_id = ledger.write_key.split("_")[1]
    forged = f"arus_{key_id}_" + "B" * 43
    response = api.get("/v1/accounts", key=forged)
    assert response.status_code == 401 and error_code(response) == "unauthenticated"


def test_revoked_key_is_unauthenticated_at_once(api, ledger, engine):
    from arus.admin.keys import revoke_key

    assert api.get("/v1/accounts", key=ledger.read_key).status_code == 200
    with engine.begin() as conn:
        assert revoke_key(conn, ledger.read_key.split("_")[1]) is True
    response = api.get("/v1/accounts", key=ledger.read_key)
    assert response.status_code == 401 and error_code(response) == "unauthenticated"


READ_PATHS = [
    "/v1/accounts",
    "/v1/accounts/cash",
    "/v1/accounts/cash/postings",
    "/v1/entries",
    "/v1/trial-balance",
    "/v1/balances?as_of=2020-01-01",
]
MISSING_READS = [
    "/v1/accounts/nope",
    "/v1/accounts/nope/postings",
    "/v1/accounts/bad%20ref",
    f"/v1/entries/{uuid.UUID(int=7)}",
    "/v1/entries/not-an-id",
    "/v1/balances?as_of=2020-01-01",
]


@pytest.fixture
def statements():
    """Every statement the server sends to PostgreSQL while the test runs."""
    import sqlalchemy as sa

    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def test_every_read_is_one_statement_with_its_key_check(api, ledger, books, statements):
    entry_id = api.get("/v1/entries", key=ledger.read_key).get_json()["data"][0]["id"]
    for path in [*READ_PATHS, f"/v1/entries/{entry_id}", *MISSING_READS]:
        statements.clear()
        response = api.get(path, key=ledger.read_key)
        assert response.status_code in (200, 404), (path, response.get_json())
        assert len(statements) == 1 and "arus_authorize" in statements[0], (path, statements)


@pytest.mark.parametrize("key", ["revoked", "unknown"])
def test_a_bad_key_is_401_even_where_the_read_finds_nothing_or_is_refused(
    api, ledger, books, engine, key
):
    from arus.admin.keys import revoke_key

    if key == "revoked":
        with engine.begin() as conn:
            assert revoke_key(conn, ledger.read_key.split("_")[1]) is True
        bearer = ledger.read_key
    else:
        bearer = "arus_0123456789abcdef_" + "A" * 43
    refused = ["/v1/accounts?limit=0", "/v1/entries?cursor=forged", "/v1/balances?as_of=x"]
    for path in [*READ_PATHS, *MISSING_READS, *refused]:
        response = api.get(path, key=bearer)
        assert response.status_code == 401, (path, response.get_json())
        assert error_code(response) == "unauthenticated"


def test_read_key_cannot_mutate(api, ledger, books):
    original = api.transfer(ledger, "equity", "cash", 3).get_json()
    for path, body in [
        ("/v1/accounts", {"code": "x", "name": "x", "type": "asset", "currency": "USD"}),
        ("/v1/entries", _entry("equity", "cash", 1)),
        (f"/v1/entries/{original['id']}/reverse", {}),
    ]:
        response = api.post(path, key=ledger.read_key, json=body, idempotency_key="ro")
        assert response.status_code == 403 and error_code(response) == "forbidden"
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 9_997


def test_write_key_can_read(api, ledger, books):
    assert api.get("/v1/accounts", key=ledger.write_key).status_code == 200


def test_wrong_content_type_is_unsupported_media_type(api, ledger):
    response = api.post(
        "/v1/accounts", key=ledger.write_key, data="code=cash",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


@pytest.mark.parametrize(
    "raw", ["{", "not json", '{"code": NaN}', '{"a": 1, "a": 2}', "", '{"x": Infinity}']
)
def test_malformed_json_is_invalid_json(api, ledger, raw):
    response = api.post(
        "/v1/accounts", key=ledger.write_key, data=raw,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400 and error_code(response) == "invalid_json"


def test_body_over_the_limit_is_payload_too_large(api, ledger, settings):
    big = '{"pad": "' + "x" * settings.max_body_bytes + '"}'
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="big", data=big,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def test_unknown_route_is_json_not_found(api, ledger):
    response = api.get("/v1/nothing-here", key=ledger.read_key)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_wrong_method_is_json_method_not_allowed(api, ledger):
    response = api.query_client.delete("/v1/accounts", headers=ledger.read)
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"


def test_each_function_serves_only_its_own_surface(api, ledger):
    assert api.post_client.get("/v1/accounts", headers=ledger.read).status_code in (404, 405)
    response = api.query_client.post("/v1/accounts", headers=ledger.write, json={})
    assert response.status_code in (404, 405)


@pytest.mark.parametrize(
    "path, position",
    [
        ("/v1/entries", {"seq": "x"}),
        ("/v1/entries", {"seq": 10**30}),
        ("/v1/entries", {"seq": True}),
        ("/v1/accounts/cash/postings", {"posting": "x"}),
        ("/v1/accounts/cash/postings", {"posting": -1}),
        ("/v1/accounts", {"code": 5}),
        ("/v1/accounts", {"seq": 5}),
    ],
)
def test_cursor_with_a_forged_position_is_validation_error(api, ledger, books, path, position):
    from arus.ledger.reads import encode_cursor

    response = api.get(path, key=ledger.read_key, query_string={"cursor": encode_cursor(position)})
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_posting_engine_runs_at_read_committed_whatever_the_server_default(engine, settings):
    from arus.platform.db import create_engine

    def set_default(level: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"ALTER DATABASE {conn.engine.url.database} "
                f"SET default_transaction_isolation TO '{level}'"
            )

    set_default("serializable")
    try:
        pinned = create_engine(settings, autocommit=True)
        with pinned.connect() as conn:
            level = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
        pinned.dispose()
    finally:
        set_default("read committed")
    assert level == "read committed"


# --- hardening found by review: inputs that must be 4xx, never a 500 or a broken connection ----


def _deep(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    "raw, code",
    [
        ('{"code": "c", "name": "a\\u0000b", "type": "asset", "currency": "USD"}',
         "validation_error"),
        ('{"code": "c", "name": "\\ud800", "type": "asset", "currency": "USD"}',
         "validation_error"),
        ('{"code": "c", "name": "n", "type": "asset", "currency": "USD", '
         '"metadata": {"k\\u0000": 1}}', "validation_error"),
        ('{"code": "c", "name": "n", "type": "asset", "currency": "USD", '
         '"metadata": {"big": 1e400}}', "invalid_json"),
        ('{"code": "c", "name": "n", "type": "asset", "currency": "USD", '
         '"metadata": {"neg": -1e400}}', "invalid_json"),
    ],
)  # fmt: skip
def test_unstorable_text_and_numbers_are_refused(api, ledger, raw, code):
    response = api.post(
        "/v1/accounts", key=ledger.write_key, data=raw,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code in (400, 422) and error_code(response) == code


@pytest.mark.parametrize("depth", [33, 900, 5000])
def test_deeply_nested_bodies_are_refused_and_write_nothing(api, ledger, books, depth):
    body = _entry("equity", "cash", 5, metadata=_deep(depth))
    try:
        raw = json.dumps(body)
    except RecursionError:
        raw = '{"postings": [], "metadata": ' + '{"n": ' * depth + "1" + "}" * (depth + 1)
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key=f"deep-{depth}", data=raw,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code in (400, 422), response.get_data()[:200]
    assert api.get("/v1/accounts/cash", key=ledger.read_key).get_json()["balance"] == 10_000


def test_metadata_nesting_up_to_the_limit_is_kept(api, ledger, books):
    response = api.post(
        "/v1/entries", key=ledger.write_key, idempotency_key="nest-ok",
        json=_entry("equity", "cash", 5, metadata=_deep(30)),
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("limit", ["\u00b2", "0" * 5000, "\u0661\u0660"])
def test_odd_limits_are_validation_errors(api, ledger, limit):
    response = api.get("/v1/accounts", key=ledger.read_key, query_string={"limit": limit})
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_poisoned_cursors_do_not_break_other_tenants_requests(api, ledger, other_ledger):
    """A cursor the driver cannot encode must not leave a broken connection in the pool."""
    import base64

    for position in ('{"code":"\\ud800"}', '{"code":"a\\u0000"}', "[" * 5000):
        cursor = base64.urlsafe_b64encode(position.encode()).decode()
        for path, query in (("/v1/accounts", {}), ("/v1/balances", {"as_of": "2020-01-01"})):
            query = {**query, "cursor": cursor}
            response = api.get(path, key=other_ledger.read_key, query_string=query)
            assert response.status_code in (404, 422), (path, response.get_json())
    for _ in range(20):
        assert api.get("/v1/accounts", key=ledger.read_key).status_code == 200


def test_driver_fault_discards_only_the_broken_connection(api, ledger, engine):
    """Even when a plain Python error escapes the driver mid-exchange, the pool stays sound."""
    import sqlalchemy as sa

    for _ in range(3):
        with pytest.raises(UnicodeEncodeError), engine.connect() as conn:
            conn.execute(sa.text("SELECT :v"), {"v": "\ud800"})
    for _ in range(20):
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 41 + 1")).scalar_one() == 42
    assert api.get("/v1/accounts", key=ledger.read_key).status_code == 200


@pytest.mark.parametrize(
    "authorization", ["bearer {key}", "BEARER {key}", "Bearer  {key}", "Bearer\t{key}"]
)
def test_bearer_scheme_is_case_insensitive_and_tolerates_spacing(api, ledger, authorization):
    headers = {"Authorization": authorization.format(key=ledger.read_key)}
    assert api.get("/v1/accounts", headers=headers).status_code == 200


def test_idempotency_key_may_contain_spaces(api, ledger, books):
    first = api.transfer(ledger, "equity", "cash", 3, key="order 42 capture")
    again = api.transfer(ledger, "equity", "cash", 3, key="order 42 capture")
    assert first.status_code == 201 and again.status_code == 200


def test_empty_optional_idempotency_key_on_accounts_is_validation_error(api, ledger):
    response = api.post(
        "/v1/accounts", key=ledger.write_key, headers={"Idempotency-Key": ""},
        json={"code": "x", "name": "x", "type": "asset", "currency": "USD"},
    )  # fmt: skip
    assert response.status_code == 422 and error_code(response) == "validation_error"


def test_a_function_serves_its_routes_in_functions_frameworks_own_request(api, ledger, monkeypatch):
    """No second Flask app per request: our app's routes run in the context already pushed."""
    import flask

    pushed: list[str] = []
    original = flask.Flask.request_context

    def counting(self, environ):
        pushed.append(self.name)
        return original(self, environ)

    monkeypatch.setattr(flask.Flask, "request_context", counting)
    assert api.get("/v1/accounts", key=ledger.read_key).status_code == 200
    assert api.post("/v1/accounts", key=ledger.write_key, json={}).status_code == 422
    assert api.get("/v1/nowhere", key=ledger.read_key).status_code == 404
    options = api.query_client.options("/v1/accounts")
    assert options.status_code == 200 and "GET" in options.headers["Allow"]
    head = api.query_client.head(
        "/v1/accounts", headers={"Authorization": f"Bearer {ledger.read_key}"}
    )
    assert head.status_code == 200 and head.data == b""
    assert "arus" not in pushed and len(pushed) == 5  # functions-framework's own, one each


def test_fingerprints_name_the_routes_the_app_serves(settings):
    """The idempotency operation of every mutation comes from its route, not a restated string."""
    from arus.web import app as web

    served_app = web.create_app(settings, surfaces=("mutations",))
    served = {rule.rule for rule in served_app.url_map.iter_rules() if "POST" in rule.methods}
    routes = {web.ACCOUNTS_ROUTE, web.ENTRIES_ROUTE, web.BATCH_ROUTE, web.REVERSE_ROUTE,
              web.POST_PENDING_ROUTE, web.VOID_PENDING_ROUTE}  # fmt: skip
    assert served == routes
    entry_id = uuid.UUID(int=5)
    assert web.operation(web.REVERSE_ROUTE, entry_id=entry_id) == (
        f"POST /v1/entries/{entry_id}/reverse"
    )
    with pytest.raises(AssertionError, match="needs its ids"):
        web.operation(web.REVERSE_ROUTE)
