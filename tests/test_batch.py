"""POST /v1/entries/batch (SPEC §3.1): every rule and code over HTTP, a storm, a property."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from arus.verify import verify_ledger
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.ledgers import Api, Ledger, new_ledger
from tests.test_storms import Outcome, http_outcome, storm

BATCH = "/v1/entries/batch"


def transfer(debit: str, credit: str, amount: int, key: str | None = None) -> dict[str, Any]:
    return {
        "idempotency_key": key or uuid.uuid4().hex,
        "postings": [
            {"account": debit, "direction": "debit", "amount": amount},
            {"account": credit, "direction": "credit", "amount": amount},
        ],
    }


def books(api: Api, ledger: Ledger) -> None:
    api.account(ledger, "cash", "asset")
    api.account(ledger, "wallet", "asset")
    api.account(ledger, "equity", "equity", allow_negative=True)


def balance(api: Api, ledger: Ledger, code: str) -> int:
    return int(api.get(f"/v1/accounts/{code}", key=ledger.read_key).get_json()["balance"])


def post_batch(api: Api, ledger: Ledger, entries: list[Any], **extra: Any) -> Any:
    return api.post(BATCH, key=ledger.write_key, json={"entries": entries, **extra})


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
STORM_KEYS = 96
STORM_BATCHES_PER_WORKER = 4
STORM_BATCH_SIZE = 12
STORM_SEED = 8


def test_overlapping_batches_with_shared_keys_make_exactly_one_entry_per_key(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    accounts = [f"acct-{i}" for i in range(8)]
    for code in accounts:
        api.account(ledger, code, "asset")
    api.account(ledger, "source", "equity", allow_negative=True)
    rng = random.Random(STORM_SEED)
    # Every key always carries the same body; some entries overdraw (10 funded, 7 moved).
    bodies = {}
    for i in range(STORM_KEYS):
        if i < len(accounts):
            bodies[f"key-{i}"] = transfer(accounts[i], "source", 10, key=f"key-{i}")
        else:
            a, b = rng.sample(accounts, 2)
            bodies[f"key-{i}"] = transfer(b, a, 7, key=f"key-{i}")

    def work(index: int, client: Any) -> list[Outcome]:
        local = random.Random(STORM_SEED * 1000 + index)
        outcomes = []
        for _ in range(STORM_BATCHES_PER_WORKER):
            keys = local.sample(sorted(bodies), STORM_BATCH_SIZE)
            response = client.post(BATCH, key=ledger.write_key, json={
                "entries": [bodies[k] for k in keys], "atomic": local.random() < 0.3})  # fmt: skip
            outcome = http_outcome(response)
            if outcome.status == 200:
                outcomes += [
                    Outcome(status=r["status"], body=r.get("entry") or r,
                            replayed=r.get("replayed", False))
                    for r in outcome.body["results"]
                ]  # fmt: skip
            else:
                outcomes.append(outcome)
        return outcomes

    outcomes, peak = storm(api, work)
    labels = Counter(o.label for o in outcomes)
    figures = f"outcomes={dict(labels)} peak_in_flight={peak}"
    assert not any(o.status >= 500 for o in outcomes), figures
    assert set(labels) <= {"201", "200", "insufficient_funds"}, figures
    with engine.connect() as conn:
        per_key = conn.execute(
            sa.text("SELECT idempotency_key, count(*) FROM entries WHERE ledger_id = :l "
                    "GROUP BY idempotency_key"), {"l": ledger.ledger_id},
        ).all()  # fmt: skip
        report = verify_ledger(conn, ledger.ledger_id)
    assert all(n == 1 for _, n in per_key), f"{figures} keys with two entries"
    created = {o.body["id"] for o in outcomes if o.status == 201}
    assert len(created) == len(per_key) == labels["201"], f"{figures} entries={len(per_key)}"
    assert report["ok"], f"{figures} verify={report}"
    print(f"\nSTORM batch: {figures} entries={len(per_key)} verify_ok={report['ok']}")


# ---------------------------------------------------------------------------------------------
# Property: a non-atomic batch gives the outcomes and balances of its items posted one by one.
# ---------------------------------------------------------------------------------------------
CODES = ("a", "b", "c")


@st.composite
def batch_items(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=12))
    items = []
    for i in range(n):
        debit, credit = draw(st.permutations((*CODES, "src")))[:2]
        amount = draw(st.sampled_from([1, 5, 20, 9223372036854775807]))
        if draw(st.booleans()) and items:
            items.append(dict(items[draw(st.integers(0, len(items) - 1))]))  # a repeated key
            continue
        item = transfer(debit, credit, amount, key=f"k{i}")
        shape = draw(st.sampled_from(["plain"] * 5 + ["split", "unknown", "currency"]))
        if shape == "split" and amount > 1:  # one account twice in the entry
            first = {**item["postings"][1], "amount": amount - 1}
            item["postings"][1:] = [first, {**first, "amount": 1}]
        elif shape == "unknown":
            item["postings"][draw(st.integers(0, 1))]["account"] = "nobody"
        elif shape == "currency":
            item["postings"][draw(st.integers(0, 1))]["currency"] = "EUR"
        items.append(item)
    seen, unique = set(), []
    for item in items:  # the batch itself may not carry one key twice
        if item["idempotency_key"] not in seen:
            seen.add(item["idempotency_key"])
            unique.append(item)
    return unique


def property_ledger(api: Api, settings: Any, name: str) -> Ledger:
    """Three non-negative asset accounts and a source that may go negative."""
    ledger = new_ledger(settings, name)
    for code in CODES:
        api.account(ledger, code, "asset")
    api.account(ledger, "src", "equity", allow_negative=True)
    return ledger


def post_alone(api: Api, ledger: Ledger, item: dict[str, Any]) -> Any:
    """A batch item as the single POST it is equivalent to."""
    body = {k: v for k, v in item.items() if k != "idempotency_key"}
    return api.post("/v1/entries", key=ledger.write_key, json=body,
                    idempotency_key=item["idempotency_key"])  # fmt: skip


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(items=batch_items(), prior=st.integers(min_value=0, max_value=2))
def test_non_atomic_batch_equals_its_items_posted_one_by_one(
    api: Api, settings: Any, items: list[dict[str, Any]], prior: int
) -> None:
    def fresh() -> Ledger:
        ledger = property_ledger(api, settings, "prop")
        for item in items[:prior]:  # some keys already used before the batch
            post_batch(api, ledger, [item])
        return ledger

    batched, single = fresh(), fresh()
    results = post_batch(api, batched, items).get_json()["results"]
    one_by_one = []
    for item in items:
        response = post_alone(api, single, item)
        one_by_one.append((response.status_code, response.get_json().get("error", {}).get("code")))
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == one_by_one
    for code in (*CODES, "src"):
        assert balance(api, batched, code) == balance(api, single, code), code


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(items=batch_items())
def test_atomic_batch_is_its_items_one_by_one_or_the_first_failure(
    api: Api, settings: Any, items: list[dict[str, Any]]
) -> None:
    batched, single = (property_ledger(api, settings, "prop-atomic") for _ in range(2))
    response = post_batch(api, batched, items, atomic=True)
    first_failure = None
    for index, item in enumerate(items):
        one = post_alone(api, single, item)
        if one.status_code >= 400:
            first_failure = (index, one.get_json()["error"]["code"])
            break
    if first_failure is None:
        assert response.status_code == 200, response.get_json()
        assert all(r["status"] in (200, 201) for r in response.get_json()["results"])
        expected = {code: balance(api, single, code) for code in (*CODES, "src")}
    else:
        error = response.get_json()["error"]
        assert response.status_code == 422 or error["code"] == "idempotency_conflict"
        assert (error["index"], error["code"]) == first_failure
        expected = {code: 0 for code in (*CODES, "src")}  # nothing written
    assert {code: balance(api, batched, code) for code in (*CODES, "src")} == expected
