"""Batch requests for the batch tests: entries, balances, one POST to /v1/entries/batch."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.ledgers import Api, Ledger

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
