"""The gateway to the posting engine: one use case per mutation, each one call in one round trip.

The SQL lives in arus/ledger/sql/posting.sql (arus_post_entry, arus_post_batch,
arus_reverse_entry, arus_post_pending, arus_void_pending, arus_create_account): authorise the
key, claim the idempotency key, lock balance rows in ascending account id, refuse overdrafts
(on the available balance) and int64 overflow, write entries, postings or holds, balances, the
stored response and the outbox event, all in the statement's own transaction. Here we call
them with bound parameters on the autocommit engine (the statement is the transaction) and map
their errors to the domain. See docs/adr/005-set-based-engine.md and ADR-006 (holds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus import errors
from arus.ledger.access import Credentials
from arus.ledger.commands import NewAccount, NewBatch, NewEntry, PendingAction, Reversal, today_utc
from arus.ledger.idempotency import fingerprint
from arus.platform import telemetry
from arus.platform.db import run_prepared


@dataclass(frozen=True)
class MutationResult:
    """What a mutation returns: the object's JSON, its status, and whether it was a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool


@telemetry.engine_call
def call_engine(
    engine: Engine,
    statement: sa.TextClause,
    params: dict[str, Any],
    *,
    retry_safe: bool,
    batch: bool = False,
) -> Any:
    """Run one engine call; on a connection found dead, once more on a fresh one, and once more
    when the engine asks for it (an entry whose day ended while it was written, posting.sql).

    A pooled connection its server closed is replaced at checkout (platform/db.py); one lost
    silently fails on use, SQLAlchemy invalidates it, and the call is repeated. That is safe
    for every call with an idempotency key (the claim replays if the first attempt committed);
    an account created without a key is not retried.
    """
    for attempt in (1, 2):
        try:
            with errors.domain_errors(), engine.connect() as conn:
                # The statement is the transaction: `engine` must be get_engine(settings).
                outcome = run_prepared(conn, statement, params)
            break
        except errors.ArusError as exc:
            if not batch:
                exc.index = None  # a single request is not an item of anything
            raise
        except sa.exc.DBAPIError as exc:
            again = exc.connection_invalidated or errors.sqlstate(exc) == errors.RETRY_STATE
            if not (again and retry_safe and attempt == 1):
                raise
    if isinstance(outcome, str):  # drivers that hand json back as text
        outcome = json.loads(outcome)
    return outcome


def _result(outcome: dict[str, Any]) -> MutationResult:
    replayed = bool(outcome["replayed"])
    return MutationResult(
        status=200 if replayed else int(outcome["status"]), body=outcome["body"], replayed=replayed
    )


_CREATE_ACCOUNT = sa.text(
    "SELECT arus_create_account(:key_id, :secret_hash, :key, :fingerprint, :code, :name, "
    ":type, :currency, :allow_negative, CAST(:metadata AS jsonb))"
)
_POST_ENTRY = sa.text(
    "SELECT arus_post_entry(:key_id, :secret_hash, :key, :fingerprint, :description, "
    "CAST(:effective_date AS date), CAST(:metadata AS jsonb), CAST(:lines AS jsonb), "
    ":pending, CAST(:expires_at AS timestamptz))"
)
_POST_BATCH = sa.text(
    "SELECT arus_post_batch(:key_id, :secret_hash, CAST(:items AS jsonb), :atomic)"
)
_REVERSE_ENTRY = sa.text(
    "SELECT arus_reverse_entry(:key_id, :secret_hash, :key, :fingerprint, "
    "CAST(:entry_id AS uuid), :description, CAST(:effective_date AS date))"
)
_POST_PENDING = sa.text(
    "SELECT arus_post_pending(:key_id, :secret_hash, :key, :fingerprint, "
    "CAST(:entry_id AS uuid), :description, CAST(:effective_date AS date))"
)
_VOID_PENDING = sa.text(
    "SELECT arus_void_pending(:key_id, :secret_hash, :key, :fingerprint, CAST(:entry_id AS uuid))"
)
_EXPIRE_HOLDS = sa.text("SELECT arus_expire_holds(:limit)")


def create_account(
    engine: Engine,
    *,
    credentials: Credentials,
    account: NewAccount,
    idempotency_key: str | None,
    request_body: object,
    operation: str,
) -> MutationResult:
    params = {
        **_keyed(credentials, idempotency_key, operation, request_body),
        "code": account.code,
        "name": account.name,
        "type": account.type,
        "currency": account.currency,
        "allow_negative": account.allow_negative,
        "metadata": json.dumps(account.metadata),
    }
    outcome = call_engine(engine, _CREATE_ACCOUNT, params, retry_safe=idempotency_key is not None)
    return _result(outcome)


def _keyed(
    credentials: Credentials, idempotency_key: str | None, operation: str, request_body: object
) -> dict[str, Any]:
    """What every keyed mutation passes: who calls, its key, and its request's fingerprint."""
    return {
        **credentials.as_params(),
        "key": idempotency_key,
        "fingerprint": fingerprint(operation=operation, body=request_body),
    }


def _lines(entry: NewEntry) -> list[dict[str, Any]]:
    """Each line as the engine reads it; `expected_version` only where the request gave one
    (the engine compares it with the account's version when it locks the row, SPEC §3.5)."""
    return [
        {
            **line.account.as_json(),
            "direction": line.direction,
            "amount": line.amount,
            **({"currency": line.currency} if line.currency else {}),
            **(
                {"expected_version": line.expected_version}
                if line.expected_version is not None
                else {}
            ),
        }
        for line in entry.postings
    ]


def post_entry(
    engine: Engine,
    *,
    credentials: Credentials,
    entry: NewEntry,
    idempotency_key: str,
    request_body: object,
    operation: str,
) -> MutationResult:
    params = {
        **_keyed(credentials, idempotency_key, operation, request_body),
        "description": entry.description,
        "effective_date": entry.effective_date.isoformat(),
        "metadata": json.dumps(entry.metadata),
        "lines": json.dumps(_lines(entry)),
        "pending": entry.pending,
        "expires_at": None if entry.expires_at is None else entry.expires_at.isoformat(),
    }
    return _result(call_engine(engine, _POST_ENTRY, params, retry_safe=True))


def post_batch(
    engine: Engine, *, credentials: Credentials, batch: NewBatch, item_operation: str
) -> list[Any]:
    """Post a batch; returns one result per item (SPEC §3.1). An atomic batch that fails raises
    the first failing item's error, with its `index`. Each item is fingerprinted as the single
    request `item_operation` it stands for."""
    items: list[dict[str, Any]] = []
    for item in batch.items:
        if isinstance(item, errors.ArusError):
            # Judged in its place by the engine: it fails alone, or fails an atomic batch there.
            items.append({"error": {"code": item.code, "status": item.status,
                                    "message": item.message}})  # fmt: skip
            continue
        items.append(
            {
                "key": item.idempotency_key,
                "fingerprint": fingerprint(operation=item_operation, body=item.request_body),
                "description": item.entry.description,
                "effective_date": item.entry.effective_date.isoformat(),
                "metadata": item.entry.metadata,
                "lines": _lines(item.entry),
                "pending": item.entry.pending,
                "expires_at": None
                if item.entry.expires_at is None
                else item.entry.expires_at.isoformat(),
            }
        )
    params = {**credentials.as_params(), "items": json.dumps(items), "atomic": batch.atomic}
    outcome = call_engine(engine, _POST_BATCH, params, retry_safe=True, batch=True)
    results: list[Any] = outcome["results"]
    return results


def reverse_entry(
    engine: Engine,
    *,
    credentials: Credentials,
    reversal: Reversal,
    idempotency_key: str,
    request_body: object,
    operation: str,
) -> MutationResult:
    params = {
        **_keyed(credentials, idempotency_key, operation, request_body),
        "entry_id": str(reversal.entry_id),
        "description": reversal.description,
        "effective_date": reversal.effective_date.isoformat(),
    }
    return _result(call_engine(engine, _REVERSE_ENTRY, params, retry_safe=True))


def post_pending(
    engine: Engine,
    *,
    credentials: Credentials,
    action: PendingAction,
    idempotency_key: str,
    request_body: object,
    operation: str,
) -> MutationResult:
    """Capture a hold: a new posted entry with the pending entry's postings, dated today."""
    params = {
        **_keyed(credentials, idempotency_key, operation, request_body),
        "entry_id": str(action.entry_id),
        "description": action.description,
        "effective_date": today_utc().isoformat(),
    }
    return _result(call_engine(engine, _POST_PENDING, params, retry_safe=True))


def void_pending(
    engine: Engine,
    *,
    credentials: Credentials,
    action: PendingAction,
    idempotency_key: str,
    request_body: object,
    operation: str,
) -> MutationResult:
    """Release a hold: the pending entry, now voided."""
    params = {
        **_keyed(credentials, idempotency_key, operation, request_body),
        "entry_id": str(action.entry_id),
    }
    return _result(call_engine(engine, _VOID_PENDING, params, retry_safe=True))


def expire_holds(engine: Engine, *, limit: int = 1000) -> int:
    """The sweep: record the outcome of up to `limit` pending entries past their expires_at and
    release their holds (they stopped counting at that instant; this only tidies). Returns how
    many it expired. `engine` is a transactional one (jobs), not the request path's."""
    with engine.begin() as conn:
        expired: int = conn.execute(_EXPIRE_HOLDS, {"limit": limit}).scalar_one()
    return expired
