"""Helpers shared by the tests: ledgers with keys, requests through the real functions, and a
corrupted balance that repairs itself. Fixtures stay in tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from arus.admin.ledgers import create_ledger_with_keys
from arus.platform.config import Settings
from arus.platform.db import get_engine

REPO = Path(__file__).resolve().parent.parent.parent


@contextmanager
def injected_drift(
    engine: sa.Engine, account_sql: str, delta: int, params: dict[str, Any]
) -> Iterator[None]:
    """Corrupt one materialized balance for the block, then repair it.

    The repair keeps the shared test database honest: the session ends with `arus verify`.
    """
    statement = sa.text(
        f"UPDATE balances SET balance = balance + :delta WHERE account_id = {account_sql}"
    )
    with engine.begin() as conn:
        conn.execute(statement, {**params, "delta": delta})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(statement, {**params, "delta": -delta})


@dataclass(frozen=True)
class Ledger:
    ledger_id: uuid.UUID
    write_key: str
    read_key: str

    @property
    def write(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write_key}"}

    @property
    def credentials(self) -> Any:
        """The write key as the posting engine's gateway takes it."""
        from arus.ledger.access import parse_credentials

        return parse_credentials(f"Bearer {self.write_key}")

    @property
    def read(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_key}"}


def new_ledger(settings: Settings, name: str = "test") -> Ledger:
    created = create_ledger_with_keys(get_engine(settings), name)
    return Ledger(
        ledger_id=uuid.UUID(created["ledger_id"]),
        write_key=created["write_key"],
        read_key=created["read_key"],
    )


class Api:
    """Requests through the real functions: POST goes to post_entry, GET to query."""

    def __init__(self, post_client: Any, query_client: Any) -> None:
        self.post_client = post_client
        self.query_client = query_client

    def post(self, path: str, *, key: str | None = None, json: Any = None,
             idempotency_key: str | None = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:  # fmt: skip
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        return self.post_client.post(path, json=json, headers=all_headers, **kwargs)

    def get(self, path: str, *, key: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.query_client.get(path, headers=headers, **kwargs)

    # Conveniences for tests that need a ledger in a given state.
    def account(self, ledger: Ledger, code: str, type_: str = "asset", currency: str = "USD",
                allow_negative: bool = False) -> dict[str, Any]:  # fmt: skip
        response = self.post(
            "/v1/accounts",
            key=ledger.write_key,
            json={"code": code, "name": code.title(), "type": type_, "currency": currency,
                  "allow_negative": allow_negative},
        )  # fmt: skip
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def transfer(self, ledger: Ledger, debit: str, credit: str, amount: int,
                 key: str | None = None) -> Any:  # fmt: skip
        return self.post(
            "/v1/entries",
            key=ledger.write_key,
            idempotency_key=key or uuid.uuid4().hex,
            json={"postings": [
                {"account": debit, "direction": "debit", "amount": amount},
                {"account": credit, "direction": "credit", "amount": amount},
            ]},
        )  # fmt: skip


def backdate_ledger(engine: sa.Engine, ledger_id: uuid.UUID | str, *, days: int) -> None:
    """Pretend the ledger was created `days` ago, so days before today can be closed for it
    (a close refuses days before its ledger existed). Test set-up only: ledgers are no journal."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ledgers SET created_at = created_at - make_interval(days => :d) "
                    "WHERE id = :l"),
            {"d": days, "l": str(ledger_id)},
        )  # fmt: skip


def age_ledger(engine: sa.Engine, ledger_id: uuid.UUID | str, *, days: int) -> None:
    """Move the ledger's whole history `days` into the past (created and effective dates), so a
    day that is over holds it and can be closed: the close judges "over" on the database's own
    clock and takes no instant from its caller. Test set-up only, as the owner with the
    append-only triggers off for this transaction."""
    shift = {"d": days, "l": str(ledger_id)}
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table, key in (("ledgers", "id"), ("accounts", "ledger_id"), ("postings", "ledger_id")):
            conn.execute(
                sa.text(f"UPDATE {table} SET created_at = created_at - make_interval(days => :d) "
                        f"WHERE {key} = :l"),
                shift,
            )  # fmt: skip
        conn.execute(
            sa.text("UPDATE entries SET created_at = created_at - make_interval(days => :d), "
                    "effective_date = effective_date - CAST(:d AS int) WHERE ledger_id = :l"),
            shift,
        )  # fmt: skip
