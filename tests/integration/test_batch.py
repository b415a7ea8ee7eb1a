"""POST /v1/entries/batch (SPEC §3.1): every rule and code over HTTP."""

from __future__ import annotations

import json

from tests.support.batches import BATCH, balance, books, post_batch, transfer


def test_non_atomic_batch_judges_items_in_order_and_commits_the_good_ones(api, ledger):
    books(api, ledger)
    items = [
        transfer("cash", "equity", 100),  # funds cash
        transfer("wallet", "cash", 60),  # sees the 100 the item before it left
        transfer("wallet", "cash", 60),  # 40 left: insufficient
        transfer("wallet", "cash", 40),
    ]
    response = post_batch(api, ledger, items)
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 201]
    assert results[2]["error"]["code"] == "insufficient_funds"
    seqs = [r["entry"]["ledger_seq"] for r in results if r["status"] == 201]
    assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + 3)), seqs
    assert balance(api, ledger, "cash") == 0 and balance(api, ledger, "wallet") == 100
    # Each new entry is its own event, in ledger_seq order.
    entries = api.get("/v1/entries", key=ledger.read_key).get_json()["data"]
    assert [e["id"] for e in reversed(entries)] == [
        r["entry"]["id"] for r in results if r["status"] == 201
    ]


def test_batch_entry_reads_like_a_single_entry(api, ledger):
    books(api, ledger)
    response = post_batch(api, ledger, [transfer("cash", "equity", 5)])
    entry = response.get_json()["results"][0]["entry"]
    assert list(entry)[:2] == ["id", "ledger_seq"], "rendered in the documented field order"
    assert api.get(f"/v1/entries/{entry['id']}", key=ledger.read_key).get_json() == entry


def test_batch_replays_and_conflicts_per_item(api, ledger):
    books(api, ledger)
    items = [transfer("cash", "equity", 10), transfer("wallet", "cash", 999)]
    first = post_batch(api, ledger, items).get_json()["results"]
    assert [r["status"] for r in first] == [201, 422]
    again = post_batch(api, ledger, items).get_json()["results"]
    assert again[0] == {"status": 200, "entry": first[0]["entry"], "replayed": True}
    # The failed item left no claim: it is judged again, and fails again.
    assert again[1]["status"] == 422 and again[1]["error"]["code"] == "insufficient_funds"
    changed = {**items[0], "description": "other body"}
    conflict = post_batch(api, ledger, [changed]).get_json()["results"][0]
    assert conflict["status"] == 409 and conflict["error"]["code"] == "idempotency_conflict"
    assert balance(api, ledger, "cash") == 10


def test_batch_item_and_single_post_with_one_key_are_the_same_request(api, ledger):
    books(api, ledger)
    item = transfer("cash", "equity", 7)
    body = {k: v for k, v in item.items() if k != "idempotency_key"}
    single = api.post("/v1/entries", key=ledger.write_key, json=body,
                      idempotency_key=item["idempotency_key"])  # fmt: skip
    assert single.status_code == 201
    replay = post_batch(api, ledger, [item]).get_json()["results"][0]
    assert replay["replayed"] is True and replay["entry"] == single.get_json()


def test_atomic_batch_is_all_or_nothing(api, ledger):
    books(api, ledger)
    good = transfer("cash", "equity", 10)
    failing = [good, transfer("cash", "equity", 1), transfer("wallet", "cash", 500)]
    response = post_batch(api, ledger, failing, atomic=True)
    assert response.status_code == 422, response.get_json()
    assert response.get_json() == {"error": {
        "code": "insufficient_funds", "message": response.get_json()["error"]["message"],
        "index": 2}}  # fmt: skip
    assert balance(api, ledger, "cash") == 0
    assert api.get("/v1/entries", key=ledger.read_key).get_json()["data"] == []
    # Nothing was claimed: the good item's key now posts, not replays.
    ok = post_batch(api, ledger, [good, transfer("wallet", "cash", 5)], atomic=True)
    assert ok.status_code == 200 and [r["status"] for r in ok.get_json()["results"]] == [201, 201]
    replayed = post_batch(api, ledger, [good], atomic=True).get_json()["results"][0]
    assert replayed["status"] == 200 and replayed["replayed"] is True


def test_atomic_batch_fails_at_the_first_failing_item_whatever_its_kind(api, ledger):
    books(api, ledger)
    used = transfer("cash", "equity", 3)
    assert post_batch(api, ledger, [used]).status_code == 200
    conflicting = {**used, "description": "changed"}
    invalid = {"idempotency_key": "bad-amount", "postings": [
        {"account": "cash", "direction": "debit", "amount": 1.5},
        {"account": "equity", "direction": "credit", "amount": 1.5}]}  # fmt: skip
    cases = [
        ([transfer("cash", "equity", 1), conflicting, invalid], 409, "idempotency_conflict", 1),
        ([transfer("cash", "equity", 1), invalid, conflicting], 422, "validation_error", 1),
        ([transfer("nope", "equity", 1), conflicting], 422, "validation_error", 0),
        ([transfer("cash", "equity", 1), {"postings": used["postings"]}], 422,
         "idempotency_key_required", 1),
    ]  # fmt: skip
    for entries, status, code, index in cases:
        response = post_batch(api, ledger, entries, atomic=True)
        error = response.get_json()["error"]
        assert (response.status_code, error["code"], error["index"]) == (status, code, index)
    assert balance(api, ledger, "cash") == 3


def test_invalid_items_fail_alone_in_a_non_atomic_batch(api, ledger):
    books(api, ledger)
    entries = [
        {"postings": transfer("cash", "equity", 1)["postings"]},  # no key
        transfer("cash", "equity", 0),
        transfer("cash", "usd-nowhere", 1),
        {
            **transfer("cash", "equity", 1),
            "postings": [
                {"account": "cash", "direction": "debit", "amount": 2},
                {"account": "equity", "direction": "credit", "amount": 1},
            ],
        },
        "not an object",
        transfer("cash", "equity", 4),
    ]
    results = post_batch(api, ledger, entries).get_json()["results"]
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        (422, "idempotency_key_required"),
        (422, "validation_error"),
        (422, "validation_error"),
        (422, "unbalanced_entry"),
        (422, "validation_error"),
        (201, None),
    ]
    assert results[1]["error"]["message"].startswith("entries[1]: ")
    assert balance(api, ledger, "cash") == 4


def test_currency_mismatch_and_int64_overflow_in_a_batch(api, ledger):
    books(api, ledger)
    api.account(ledger, "big", "asset", allow_negative=True)
    api.account(ledger, "big-source", "equity", allow_negative=True)
    mismatch = transfer("cash", "equity", 1)
    mismatch["postings"][0]["currency"] = "EUR"
    max_int64 = 9223372036854775807
    results = post_batch(api, ledger, [
        mismatch,
        transfer("big", "big-source", max_int64),
        transfer("big", "big-source", 1),  # the balance would leave int64
    ]).get_json()["results"]  # fmt: skip
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        (422, "currency_mismatch"), (201, None), (422, "validation_error")]  # fmt: skip


NOT_STRINGS = [7, 1.5, True, False, ["k"], [], {"k": "v"}, {}]


def test_an_idempotency_key_that_is_not_a_string_is_that_items_validation_error(api, ledger):
    books(api, ledger)
    entries = [{**transfer("cash", "equity", 1), "idempotency_key": key} for key in NOT_STRINGS]
    response = post_batch(api, ledger, [*entries, transfer("cash", "equity", 2)])
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    kinds = ["a number", "a number", "a boolean", "a boolean", "an array", "an array",
             "an object", "an object"]  # fmt: skip
    assert [r.get("error") for r in results[:-1]] == [
        {"code": "validation_error",
         "message": f"entries[{i}]: idempotency_key must be a string, not {kind}"}
        for i, kind in enumerate(kinds)
    ]  # fmt: skip
    assert {r["status"] for r in results[:-1]} == {422} and results[-1]["status"] == 201
    assert balance(api, ledger, "cash") == 2


def test_an_idempotency_key_that_is_not_a_string_fails_an_atomic_batch_at_its_index(api, ledger):
    books(api, ledger)
    for key in NOT_STRINGS:
        entries = [transfer("cash", "equity", 1), {**transfer("cash", "equity", 1),
                                                   "idempotency_key": key}]  # fmt: skip
        response = post_batch(api, ledger, entries, atomic=True)
        assert response.status_code == 422, (key, response.get_json())
        error = response.get_json()["error"]
        assert (error["code"], error["index"]) == ("validation_error", 1), key
        assert error["message"].startswith("entries[1]: idempotency_key must be a string, not ")
    # A null key is a missing key, as in any body.
    response = post_batch(api, ledger, [{**transfer("cash", "equity", 1),
                                         "idempotency_key": None}], atomic=True)  # fmt: skip
    assert response.get_json()["error"]["code"] == "idempotency_key_required"
    assert balance(api, ledger, "cash") == 0


def test_what_is_not_a_batch_is_a_validation_error(api, ledger):
    books(api, ledger)
    shared = transfer("cash", "equity", 1, key="same")
    too_many_postings = [
        {"idempotency_key": f"k{i}", "postings": [
            {"account": "cash", "direction": "debit", "amount": 1}] * 50
            + [{"account": "equity", "direction": "credit", "amount": 1}] * 50}
        for i in range(101)
    ]  # fmt: skip
    for body in (
        [],
        {"atomic": True},
        {"entries": []},
        {"entries": "x"},
        {"entries": [transfer("cash", "equity", 1)] * 1001},
        {"entries": [shared, dict(shared)]},
        {"entries": [transfer("cash", "equity", 1)], "atomic": "yes"},
        {"entries": [transfer("cash", "equity", 1)], "extra": 1},
        {"entries": too_many_postings},
    ):
        response = api.post(BATCH, key=ledger.write_key, json=body)
        assert response.status_code == 422, (body if len(str(body)) < 200 else "big", response)
        assert response.get_json()["error"]["code"] == "validation_error"
        assert "index" not in response.get_json()["error"]
    assert balance(api, ledger, "cash") == 0


def test_batch_needs_a_write_key_and_a_bounded_body(api, ledger, settings):
    books(api, ledger)
    entries = [transfer("cash", "equity", 1)]
    assert api.post(BATCH, json={"entries": entries}).status_code == 401
    assert api.post(BATCH, key=ledger.read_key, json={"entries": entries}).status_code == 403
    # Over the batch limit (8 MiB by default): 413; between the entry and batch limits: fine.
    huge = {"entries": entries, "atomic": False, "pad": "x" * settings.max_batch_body_bytes}
    response = api.post(BATCH, key=ledger.write_key, json=huge)
    assert response.status_code == 413 and response.get_json()["error"]["code"] == (
        "payload_too_large"
    )
    big = [{**transfer("cash", "equity", 1), "description": "d" * 1000} for _ in range(1000)]
    assert len(json.dumps({"entries": big})) > settings.max_body_bytes
    response = api.post(BATCH, key=ledger.write_key, json={"entries": big})
    assert response.status_code == 200 and len(response.get_json()["results"]) == 1000
    assert balance(api, ledger, "cash") == 1000
    # A single POST keeps its own, smaller limit.
    single = api.post("/v1/entries", key=ledger.write_key, idempotency_key="k",
                      json={"postings": entries[0]["postings"],
                            "description": "x" * settings.max_body_bytes})  # fmt: skip
    assert single.status_code == 413


# ---------------------------------------------------------------------------------------------
# Storm: 32 workers post overlapping batches that share idempotency keys.
# ---------------------------------------------------------------------------------------------
