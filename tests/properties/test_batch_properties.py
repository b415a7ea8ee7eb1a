"""Batch properties: a batch equals its items posted one by one (SPEC §3.1)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.batches import balance, post_batch, transfer
from tests.support.ledgers import Api, Ledger, new_ledger

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
