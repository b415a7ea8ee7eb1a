"""The posting engine: one use case per mutation, each one transaction in one round trip.

The SQL lives in the migrations as functions (arus_post_entry, arus_reverse_entry,
arus_create_account): claim the idempotency key, lock balance rows in ascending account id,
refuse overdrafts and int64 overflow, write entry, postings, balances, the stored response and
the outbox event, all in the statement's own transaction. Here we call them with bound
parameters on the autocommit posting engine (the statement is the transaction) and map their
errors to the domain. See docs/adr/003-ordered-row-locks-read-committed.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus import errors
from arus.domain import NewAccount, NewEntry, Reversal
from arus.idempotency import fingerprint


@dataclass(frozen=True)
class MutationResult:
    """What a mutation returns: the object's JSON, its status, and whether it was a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a database error that stands for a domain outcome into that domain error."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        domain = errors.from_database(exc.orig) if exc.orig is not None else None
        if domain is None:
            raise
        raise domain from None


def _call(engine: Engine, statement: sa.TextClause, params: dict[str, Any]) -> MutationResult:
    with domain_errors(), engine.connect() as conn:
        # The statement is the transaction: `engine` must be get_engine(..., autocommit=True).
        outcome = conn.execute(statement, params).scalar_one()
    if isinstance(outcome, str):  # drivers that hand jsonb back as text
        outcome = json.loads(outcome)
    return MutationResult(
        status=200 if outcome["replayed"] else int(outcome["status"]),
        body=outcome["body"],
        replayed=bool(outcome["replayed"]),
    )


_CREATE_ACCOUNT = sa.text(
    "SELECT arus_create_account(CAST(:ledger AS uuid), :key, :fingerprint, :code, :name, "
    ":type, :currency, :allow_negative, CAST(:metadata AS jsonb))"
)
_POST_ENTRY = sa.text(
    "SELECT arus_post_entry(CAST(:ledger AS uuid), :key, :fingerprint, :description, "
    "CAST(:effective_date AS date), CAST(:metadata AS jsonb), CAST(:lines AS jsonb))"
)
_REVERSE_ENTRY = sa.text(
    "SELECT arus_reverse_entry(CAST(:ledger AS uuid), :key, :fingerprint, "
    "CAST(:entry_id AS uuid), :description, CAST(:effective_date AS date))"
)


def create_account(
    engine: Engine,
    *,
    ledger_id: uuid.UUID,
    account: NewAccount,
    idempotency_key: str | None,
    request_body: object,
) -> MutationResult:
    return _call(
        engine,
        _CREATE_ACCOUNT,
        {
            "ledger": str(ledger_id),
            "key": idempotency_key,
            "fingerprint": fingerprint(operation="POST /v1/accounts", body=request_body),
            "code": account.code,
            "name": account.name,
            "type": account.type,
            "currency": account.currency,
            "allow_negative": account.allow_negative,
            "metadata": json.dumps(account.metadata),
        },
    )


def post_entry(
    engine: Engine,
    *,
    ledger_id: uuid.UUID,
    entry: NewEntry,
    idempotency_key: str,
    request_body: object,
) -> MutationResult:
    lines = [
        {
            **line.account.as_json(),
            "direction": line.direction,
            "amount": line.amount_minor,
            **({"currency": line.currency} if line.currency else {}),
        }
        for line in entry.postings
    ]
    return _call(
        engine,
        _POST_ENTRY,
        {
            "ledger": str(ledger_id),
            "key": idempotency_key,
            "fingerprint": fingerprint(operation="POST /v1/entries", body=request_body),
            "description": entry.description,
            "effective_date": entry.effective_date.isoformat(),
            "metadata": json.dumps(entry.metadata),
            "lines": json.dumps(lines),
        },
    )


def reverse_entry(
    engine: Engine,
    *,
    ledger_id: uuid.UUID,
    reversal: Reversal,
    idempotency_key: str,
    request_body: object,
) -> MutationResult:
    return _call(
        engine,
        _REVERSE_ENTRY,
        {
            "ledger": str(ledger_id),
            "key": idempotency_key,
            "fingerprint": fingerprint(
                operation=f"POST /v1/entries/{reversal.entry_id}/reverse", body=request_body
            ),
            "entry_id": str(reversal.entry_id),
            "description": reversal.description,
            "effective_date": reversal.effective_date.isoformat(),
        },
    )
