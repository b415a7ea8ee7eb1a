"""The lean schema (migration 0007) refuses what its CHECKs, foreign keys and balance trigger did.

Each replaced constraint gets a row that violates it, written as the owner with plain INSERTs
behind the engine, and the same row made valid: the first is refused (by its statement or at
commit), the second is accepted (its transaction runs the deferred checks, then rolls back, so
the shared database keeps passing `arus verify`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.ledgers import Api, Ledger


@dataclass(frozen=True)
class Books:
    ledger: str
    other_ledger: str
    cash: str  # asset, may not go negative
    equity: str  # may go negative
    other_cash: str  # an account of the other ledger
    entry: str  # a posted entry of the ledger
    other_entry: str  # a posted entry of the other ledger


@pytest.fixture
def books(api: Api, ledger: Ledger, other_ledger: Ledger) -> Books:
    cash = api.account(ledger, "cash")["id"]
    equity = api.account(ledger, "equity", "equity", allow_negative=True)["id"]
    other_cash = api.account(other_ledger, "cash", allow_negative=True)["id"]
    api.account(other_ledger, "equity", "equity", allow_negative=True)
    entry = api.transfer(ledger, "cash", "equity", 100).get_json()["id"]
    other_entry = api.transfer(other_ledger, "cash", "equity", 1).get_json()["id"]
    return Books(str(ledger.ledger_id), str(other_ledger.ledger_id), cash, equity, other_cash,
                 entry, other_entry)  # fmt: skip


def _line(books: Books, at: int, side: str, **overrides: Any) -> dict[str, Any]:
    account = books.cash if side == "debit" else books.equity
    return {"ledger_id": books.ledger, "account_id": account, "position": at,
            "direction": side, "amount": 5, "currency": "USD", **overrides}  # fmt: skip


def write_lines(conn: Any, entry_id: str, lines: list[dict[str, Any]], *, pending: bool) -> None:
    """The lines of one entry, in one statement (as the engine writes them)."""
    table = "pending_postings" if pending else "postings"
    extra = "" if pending else ", balance_after, account_version, created_at"
    values, params = [], {"entry": entry_id}
    for i, line in enumerate(lines):
        values.append(
            f"(CAST(:entry AS uuid), CAST(:l{i} AS uuid), CAST(:a{i} AS uuid), :p{i}, :d{i}, "
            f":m{i}, :c{i}" + ("" if pending else ", 0, 1, now()") + ")"
        )
        params |= {f"l{i}": line["ledger_id"], f"a{i}": line["account_id"],
                   f"p{i}": line["position"], f"d{i}": line["direction"],
                   f"m{i}": line["amount"], f"c{i}": line["currency"]}  # fmt: skip
    conn.execute(
        sa.text(f"INSERT INTO {table} (entry_id, ledger_id, account_id, position, direction, "
                f"amount, currency{extra}) VALUES {', '.join(values)}"),
        params,
    )  # fmt: skip


def write_entry(
    conn: Any, books: Books, lines: list[dict[str, Any]] | None = None, **fields: Any
) -> str:
    """An entry (its fields overridden) and, unless `lines` is [], two balanced lines."""
    row = {"id": str(uuid.uuid4()), "ledger_id": books.ledger,
           "ledger_seq": random.randint(10**12, 10**15), "description": None, "metadata": "{}",
           "reverses": None, "posts": None, "pending": False, "expires_at": None,
           **fields}  # fmt: skip
    conn.execute(
        sa.text("INSERT INTO entries (id, ledger_id, ledger_seq, description, effective_date, "
                "metadata, reverses, posts, pending, expires_at, idempotency_key) VALUES "
                "(CAST(:id AS uuid), CAST(:ledger_id AS uuid), :ledger_seq, :description, "
                "current_date, CAST(:metadata AS jsonb), CAST(:reverses AS uuid), "
                "CAST(:posts AS uuid), :pending, CAST(:expires_at AS timestamptz), 'lean')"),
        row,
    )  # fmt: skip
    if lines is None:
        lines = [_line(books, 1, "debit"), _line(books, 2, "credit")]
    if lines:
        write_lines(conn, row["id"], lines, pending=row["pending"])
    return str(row["id"])


def write_account(conn: Any, books: Books, **balance: Any) -> str:
    """A new account of the ledger and its balance row (its fields overridden)."""
    account = conn.execute(
        sa.text("INSERT INTO accounts (ledger_id, code, name, type, currency) VALUES "
                "(CAST(:l AS uuid), :code, 'Lean', 'asset', 'USD') RETURNING id"),
        {"l": books.ledger, "code": f"lean-{uuid.uuid4().hex[:8]}"},
    ).scalar_one()  # fmt: skip
    row = {"account_id": str(account), "ledger_id": books.ledger, "currency": "USD",
           "normal_side": "debit", "allow_negative": False, "balance": 0, "posting_count": 0,
           "pending_debits": 0, "pending_credits": 0, **balance}  # fmt: skip
    conn.execute(
        sa.text("INSERT INTO balances (account_id, ledger_id, currency, normal_side, "
                "allow_negative, balance, posting_count, pending_debits, pending_credits) VALUES "
                "(CAST(:account_id AS uuid), CAST(:ledger_id AS uuid), :currency, :normal_side, "
                ":allow_negative, :balance, :posting_count, :pending_debits, :pending_credits)"),
        row,
    )  # fmt: skip
    return str(account)


def write_pending(conn: Any, books: Books, **hold: Any) -> None:
    """A pending entry, its pending lines and a hold on its first line (fields overridden)."""
    entry = write_entry(conn, books, pending=True)
    row = {"entry_id": entry, "position": 1, "ledger_id": books.ledger,
           "account_id": books.cash, "direction": "debit", "amount": 5, **hold}  # fmt: skip
    conn.execute(
        sa.text("INSERT INTO holds (entry_id, position, ledger_id, account_id, direction, "
                "amount) VALUES (CAST(:entry_id AS uuid), :position, CAST(:ledger_id AS uuid), "
                "CAST(:account_id AS uuid), :direction, :amount)"),
        row,
    )  # fmt: skip


def write_outcome(conn: Any, books: Books, *, other_ledgers_entry: bool = False,
                  **row: Any) -> None:  # fmt: skip
    entry = books.other_entry if other_ledgers_entry else write_entry(conn, books, pending=True)
    values = {"entry_id": entry, "ledger_id": books.ledger, "outcome": "voided", **row}
    conn.execute(
        sa.text("INSERT INTO pending_outcomes (entry_id, ledger_id, outcome) VALUES "
                "(CAST(:entry_id AS uuid), CAST(:ledger_id AS uuid), :outcome)"),
        values,
    )  # fmt: skip


def write_key(conn: Any, books: Books, **row: Any) -> None:
    values = {"ledger_id": books.ledger, "key": f"lean-{uuid.uuid4().hex}", **row}
    conn.execute(
        sa.text("INSERT INTO idempotency_keys (ledger_id, key, fingerprint) VALUES "
                "(CAST(:ledger_id AS uuid), :key, 'f')"),
        values,
    )  # fmt: skip


def write_event(conn: Any, books: Books, **row: Any) -> None:
    values = {"ledger_id": books.ledger, "event_type": "entry.committed", **row}
    conn.execute(
        sa.text("INSERT INTO outbox_events (event_id, ledger_id, event_type, occurred_at, "
                "envelope) VALUES (gen_random_uuid(), CAST(:ledger_id AS uuid), :event_type, "
                "now(), '{}')"),
        values,
    )  # fmt: skip


def write_ledger(conn: Any, books: Books, **row: Any) -> None:
    values = {"name": "lean", "last_ledger_seq": 0, **row}
    conn.execute(
        sa.text("INSERT INTO ledgers (name, last_ledger_seq) VALUES (:name, :last_ledger_seq)"),
        values,
    )


def _lines(books: Books, count: int, **overrides: Any) -> list[dict[str, Any]]:
    """`count` lines that balance when count is even: debits first, then as many credits."""
    half = count // 2
    return [_line(books, i + 1, "debit" if i < half else "credit", **overrides)
            for i in range(count)]  # fmt: skip


Write = Callable[[Any, Books, bool], None]


@dataclass(frozen=True)
class Case:
    constraint: str  # what was refused before, and what the refusal names now
    write: Write  # (conn, books, bad): the valid row, or (bad) the violating one


def _line_case(constraint: str, column: str, bad: Any, *, pending: bool = False) -> Case:
    return Case(constraint, lambda c, b, wrong: write_entry(c, b, pending=pending, lines=[
        _line(b, 1, "debit", **({column: bad} if wrong else {})),
        _line(b, 2, "credit")]))  # fmt: skip


def _field(constraint: str, write: Callable[..., Any], column: str, good: Any, bad: Any) -> Case:
    return Case(constraint, lambda c, b, wrong: write(c, b, **{column: bad if wrong else good}))


# fmt: off
CASES = [
    # Single-column CHECKs, now domains.
    *(_line_case(f"arus_{name}", column, bad, pending=pending)
      for pending in (False, True)
      for name, column, bad in (("currency", "currency", "usd"),
                                ("direction", "direction", "sideways"),
                                ("amount", "amount", 0),
                                ("position", "position", 101))),
    _field("arus_direction", write_pending, "direction", "debit", "up"),
    _field("arus_amount", write_pending, "amount", 5, -5),
    _field("arus_currency", write_account, "currency", "USD", "US"),
    _field("arus_direction", write_account, "normal_side", "credit", "left"),
    _field("arus_counter", write_account, "posting_count", 0, -1),
    _field("arus_counter", write_account, "pending_debits", 0, -1),
    _field("arus_counter", write_account, "pending_credits", 0, -1),
    _field("arus_ledger_seq", write_entry, "ledger_seq", 10**16, 0),
    _field("arus_description", write_entry, "description", "d" * 1000, "d" * 1001),
    _field("arus_json_object", write_entry, "metadata", '{"a": 1}', "[1]"),
    _field("arus_idempotency_key", write_key, "key", "k" * 255, ""),
    _field("arus_event_type", write_event, "event_type", "ledger.closed", "Ledger.closed"),
    _field("arus_outcome", write_outcome, "outcome", "expired", "lost"),
    _field("arus_name", write_ledger, "name", "n", ""),
    _field("arus_counter", write_ledger, "last_ledger_seq", 0, -1),
    # Multi-column CHECKs, now statement-level checks.
    _field("balances_non_negative", write_account, "balance", 0, -1),
    Case("balances_non_negative", lambda c, b, wrong: write_account(
        c, b, balance=-1, allow_negative=not wrong)),
    Case("entries_not_self_reversal", lambda c, b, wrong: write_entry(
        c, b, id=(entry := str(uuid.uuid4())), reverses=entry if wrong else b.entry)),
    Case("entries_expiry_only_pending", lambda c, b, wrong: write_entry(
        c, b, pending=not wrong, expires_at="2999-01-01T00:00:00Z")),
    Case("entries_posts_only_posted", lambda c, b, wrong: write_entry(
        c, b, pending=wrong, posts=write_entry(c, b, pending=True))),
    # Foreign keys, now statement-level checks; the composite ones still pin the ledger.
    Case("entries_ledger_id_fkey", lambda c, b, wrong: write_entry(
        c, b, ledger_id=str(uuid.uuid4()) if wrong else b.ledger)),
    Case("entries_reverses_fkey", lambda c, b, wrong: write_entry(
        c, b, reverses=b.other_entry if wrong else b.entry)),
    Case("entries_posts_fkey", lambda c, b, wrong: write_entry(
        c, b, posts=str(uuid.uuid4()) if wrong else write_entry(c, b, pending=True))),
    *(Case(f"{table}_ledger_id_account_id_fkey", lambda c, b, wrong, p=pending: write_entry(
        c, b, pending=p, lines=[_line(b, 1, "debit", **({"account_id": b.other_cash} if wrong
                                                       else {})),
                                _line(b, 2, "credit")]))
      for table, pending in (("postings", False), ("pending_postings", True))),
    *(Case(f"{table}_ledger_id_entry_id_fkey", lambda c, b, wrong, p=pending: write_lines(
        c, b.other_entry if wrong else write_entry(c, b, pending=p, lines=[]),
        [_line(b, 51, "debit"), _line(b, 52, "credit")], pending=p))
      for table, pending in (("postings", False), ("pending_postings", True))),
    _field("holds_entry_id_position_fkey", write_pending, "position", 2, 3),
    Case("pending_outcomes_ledger_id_entry_id_fkey", lambda c, b, wrong: write_outcome(
        c, b, other_ledgers_entry=wrong)),
    *(Case(f"{table}_ledger_id_fkey", lambda c, b, wrong, w=write: w(
        c, b, ledger_id=str(uuid.uuid4()) if wrong else b.ledger))
      for table, write in (("idempotency_keys", write_key), ("outbox_events", write_event))),
    Case("balances_ledger_id_account_id_fkey", lambda c, b, wrong: write_account(
        c, b, ledger_id=b.other_ledger if wrong else b.ledger)),
    # The balance trigger, now the lines' statement check and a deferred check that they exist.
    Case("does not balance", lambda c, b, wrong: write_entry(c, b, lines=[
        _line(b, 1, "debit"), _line(b, 2, "credit", amount=4 if wrong else 5)])),
    Case("does not balance", lambda c, b, wrong: write_entry(c, b, lines=[
        _line(b, 1, "debit"), _line(b, 2, "credit", currency="EUR" if wrong else "USD")])),
    Case("has 0 postings", lambda c, b, wrong: write_entry(c, b, lines=[] if wrong else None)),
    Case("has 0 postings", lambda c, b, wrong: write_entry(
        c, b, pending=True, lines=[] if wrong else None)),
    Case("has 1 postings", lambda c, b, wrong: write_entry(
        c, b, lines=[_line(b, 1, "debit")] if wrong else None)),
    Case("has 101 postings", lambda c, b, wrong: _hundred_and_one(c, b, wrong)),
]
# fmt: on


def _hundred_and_one(conn: Any, books: Books, wrong: bool) -> None:
    """100 postings (the most one entry may have) and, when wrong, one pending line more: the
    count is over both tables, as before (positions stop at 100 in each)."""
    entry = write_entry(conn, books, lines=_lines(books, 100))
    if wrong:
        write_lines(conn, entry, [_line(books, 1, "debit")], pending=True)


def _refusal(exc: BaseException) -> dict[str, str]:
    orig = getattr(exc, "orig", None)
    return orig.args[0] if orig is not None and isinstance(orig.args[0], dict) else {}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.constraint.replace(" ", "_"))
def test_a_violating_row_is_refused(engine, books, case):
    with pytest.raises(sa.exc.DBAPIError) as refused, engine.begin() as conn:
        case.write(conn, books, True)
    fields = _refusal(refused.value)
    assert case.constraint in fields.get("M", "") + fields.get("n", ""), fields
    assert fields["C"] in ("23514", "23503", "P0001"), fields


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.constraint.replace(" ", "_"))
def test_the_same_row_made_valid_is_accepted(engine, books, case):
    with engine.connect() as conn, conn.begin() as tx:
        case.write(conn, books, False)
        conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")  # the commit's checks, now
        tx.rollback()


def test_the_engine_maps_a_negative_balance_behind_it_to_insufficient_funds(engine, books):
    """The check keeps the constraint's name, which the gateway maps (arus.errors)."""
    from arus.errors import InsufficientFunds, from_database

    with pytest.raises(sa.exc.DBAPIError) as refused, engine.begin() as conn:
        conn.execute(sa.text("UPDATE balances SET balance = -1 WHERE account_id = :a"),
                     {"a": books.cash})  # fmt: skip
    assert isinstance(from_database(refused.value.orig), InsufficientFunds)


KEPT = [
    "DELETE FROM ledgers WHERE id = :ledger",
    "TRUNCATE ledgers CASCADE",
    "UPDATE ledgers SET id = gen_random_uuid() WHERE id = :ledger",
    "DELETE FROM accounts WHERE id = :cash",
    "TRUNCATE accounts CASCADE",
    "UPDATE accounts SET id = gen_random_uuid() WHERE id = :cash",
    "UPDATE accounts SET ledger_id = :other WHERE id = :cash",
    "DELETE FROM balances WHERE account_id = :cash",
    "TRUNCATE balances",
    "UPDATE balances SET account_id = gen_random_uuid() WHERE account_id = :cash",
    "UPDATE balances SET ledger_id = :other WHERE account_id = :cash",
    "UPDATE holds SET position = position + 1",
    "UPDATE idempotency_keys SET ledger_id = :other WHERE ledger_id = :ledger",
    "UPDATE outbox_events SET ledger_id = :other WHERE ledger_id = :ledger",
]


@pytest.mark.parametrize("statement", KEPT)
def test_what_the_checks_find_stays_where_they_found_it(engine, books, statement):
    """The checks lock nothing they find: ledgers, accounts and balances are never removed or
    re-keyed, and no row moves to another ledger."""
    params = {"ledger": books.ledger, "other": books.other_ledger, "cash": books.cash}
    with pytest.raises(sa.exc.DBAPIError) as refused, engine.begin() as conn:
        conn.execute(sa.text(statement), {k: v for k, v in params.items() if f":{k}" in statement})
    assert "is refused" in _refusal(refused.value).get("M", ""), statement


def test_other_columns_of_ledgers_and_balances_still_update(engine, books):
    """The posting path's updates (ledger_seq, balances) name no key: they pass."""
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(sa.text("UPDATE ledgers SET last_ledger_seq = last_ledger_seq WHERE id = "
                             "CAST(:l AS uuid)"), {"l": books.ledger})  # fmt: skip
        conn.execute(sa.text("UPDATE balances SET balance = balance + 1, updated_at = now() "
                             "WHERE account_id = CAST(:a AS uuid)"), {"a": books.cash})  # fmt: skip
        tx.rollback()
