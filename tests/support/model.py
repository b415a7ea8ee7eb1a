"""A tiny in-memory ledger that predicts what the real one must answer (SPEC §2, §3).

The property tests drive the real engine and this model side by side (the idea of pgledger's
`go/propertytest/model.go`): the model says which status and error code every request gets and
what every balance is afterwards; the tests assert that the engine agrees, step by step.

The rules it encodes, and nothing more:
- asset and expense are debit-normal; liability, equity and revenue are credit-normal; a balance
  is signed in the account's normal direction.
- an entry balances per currency (sum of debits == sum of credits), else `unbalanced_entry`;
  that check comes before any balance is looked at.
- an account with allow_negative false must not end below zero after all postings of the
  entry, else `insufficient_funds` and nothing is written.
- a reversal mirrors every posting of its original and obeys the same overdraft rule; an entry
  is reversed at most once (`already_reversed`); only posted entries are reversed
  (`entry_not_posted`).
- holds (SPEC §3.2): a pending entry moves no balance; its lines add to the account's
  pending debits or credits. The available balance is the balance less the pending amounts on
  the side that lowers it, and the overdraft rule applies to it, for pending and posted
  entries alike. Post turns the hold into a posted entry with the same lines (it cannot fail
  for funds); void and expiry release it; a pending entry has one outcome
  (`entry_not_pending`, or `pending_expired` once it expired).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

ACCOUNT_TYPES = ("asset", "expense", "liability", "equity", "revenue")
DEBIT_NORMAL = frozenset({"asset", "expense"})


@dataclass
class ModelAccount:
    code: str
    type: str
    currency: str
    allow_negative: bool
    balance: int = 0
    pending_debits: int = 0
    pending_credits: int = 0

    @property
    def normal_side(self) -> str:
        return "debit" if self.type in DEBIT_NORMAL else "credit"

    @property
    def lowering_pending(self) -> int:
        return self.pending_credits if self.normal_side == "debit" else self.pending_debits

    @property
    def available(self) -> int:
        return self.balance - self.lowering_pending

    def delta(self, direction: str, amount_minor: int) -> int:
        """How a posting moves this account's balance (signed in its normal direction)."""
        return amount_minor if direction == self.normal_side else -amount_minor


@dataclass(frozen=True)
class Line:
    """One posting of a request: account code, direction, amount in minor units."""

    account: str
    direction: str
    amount_minor: int

    def mirrored(self) -> Line:
        opposite = "credit" if self.direction == "debit" else "debit"
        return Line(self.account, opposite, self.amount_minor)

    def as_json(self) -> dict[str, Any]:
        return {"account": self.account, "direction": self.direction, "amount": self.amount_minor}


@dataclass
class ModelEntry:
    entry_id: str
    lines: tuple[Line, ...]
    reverses: str | None = None
    reversed_by: str | None = None
    status: str = "posted"  # posted, or a pending entry's: pending, posted, voided, expired
    pending: bool = False  # written as a pending entry


@dataclass
class LedgerModel:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    entries: dict[str, ModelEntry] = field(default_factory=dict)  # in commit order

    def add_account(
        self, *, code: str, type_: str, currency: str, allow_negative: bool
    ) -> ModelAccount:
        assert code not in self.accounts, f"model already has account {code}"
        account = ModelAccount(code, type_, currency, allow_negative)
        self.accounts[code] = account
        return account

    def unbalanced_currencies(self, lines: Iterable[Line]) -> list[str]:
        net: dict[str, int] = defaultdict(int)
        for line in lines:
            sign = 1 if line.direction == "debit" else -1
            net[self.accounts[line.account].currency] += sign * line.amount_minor
        return sorted(currency for currency, total in net.items() if total != 0)

    def balances_after(self, lines: Iterable[Line]) -> dict[str, int]:
        """The final balance of every account the lines touch, if they were all applied."""
        after: dict[str, int] = {}
        for line in lines:
            account = self.accounts[line.account]
            current = after.get(line.account, account.balance)
            after[line.account] = current + account.delta(line.direction, line.amount_minor)
        return after

    def lowering_after(self, lines: Iterable[Line]) -> dict[str, int]:
        """The pending amounts on the lowering side of every account the lines touch, if the
        lines were held."""
        after: dict[str, int] = {}
        for line in lines:
            account = self.accounts[line.account]
            current = after.get(line.account, account.lowering_pending)
            lowers = line.direction != account.normal_side
            after[line.account] = current + (line.amount_minor if lowers else 0)
        return after

    def predict_entry(self, lines: tuple[Line, ...], *, pending: bool = False) -> str | None:
        """The error code the engine must answer for a new entry, or None for 201."""
        if self.unbalanced_currencies(lines):
            return "unbalanced_entry"
        if pending:
            available = {
                code: self.accounts[code].balance - lowering
                for code, lowering in self.lowering_after(lines).items()
            }
        else:
            available = {
                code: balance - self.accounts[code].lowering_pending
                for code, balance in self.balances_after(lines).items()
            }
        for code, balance in available.items():
            if balance < 0 and not self.accounts[code].allow_negative:
                return "insufficient_funds"
        return None

    def predict_reversal(self, entry_id: str) -> str | None:
        """The error code a new reversal of entry_id must get, or None for 201."""
        if self.entries[entry_id].pending:
            return "entry_not_posted"
        if self.entries[entry_id].reversed_by is not None:
            return "already_reversed"
        return self.predict_entry(self.mirrored(entry_id))

    def predict_resolution(self, entry_id: str) -> str | None:
        """The error code a post or void of entry_id must get, or None when it succeeds."""
        entry = self.entries[entry_id]
        if entry.status == "expired":
            return "pending_expired"
        if entry.status != "pending":
            return "entry_not_pending"
        return None

    def _hold(self, lines: Iterable[Line], sign: int) -> None:
        for line in lines:
            account = self.accounts[line.account]
            if line.direction == "debit":
                account.pending_debits += sign * line.amount_minor
            else:
                account.pending_credits += sign * line.amount_minor

    def hold(self, entry_id: str, lines: tuple[Line, ...]) -> None:
        assert self.predict_entry(lines, pending=True) is None, "only holds it accepts"
        self._hold(lines, +1)
        self.entries[entry_id] = ModelEntry(entry_id, lines, status="pending", pending=True)

    def post_hold(self, entry_id: str, posting_id: str) -> None:
        held = self.entries[entry_id]
        assert self.predict_resolution(entry_id) is None
        self._hold(held.lines, -1)
        held.status = "posted"
        self.apply(posting_id, held.lines)

    def release(self, entry_id: str, outcome: str) -> None:
        held = self.entries[entry_id]
        assert self.predict_resolution(entry_id) is None and outcome in ("voided", "expired")
        self._hold(held.lines, -1)
        held.status = outcome

    def mirrored(self, entry_id: str) -> tuple[Line, ...]:
        return tuple(line.mirrored() for line in self.entries[entry_id].lines)

    def apply(self, entry_id: str, lines: tuple[Line, ...], *, reverses: str | None = None) -> None:
        assert self.predict_entry(lines) is None, "the model only applies entries it accepts"
        for code, balance in self.balances_after(lines).items():
            self.accounts[code].balance = balance
        self.entries[entry_id] = ModelEntry(entry_id, lines, reverses=reverses)
        if reverses is not None:
            self.entries[reverses].reversed_by = entry_id

    def balances(self) -> dict[str, int]:
        return {code: account.balance for code, account in self.accounts.items()}

    def holds(self) -> dict[str, tuple[int, int, int]]:
        """Per account: (pending debits, pending credits, available balance)."""
        return {
            code: (a.pending_debits, a.pending_credits, a.available)
            for code, a in self.accounts.items()
        }

    def totals(self) -> list[dict[str, Any]]:
        """The trial balance's totals per currency: debit and credit balances summed apart."""
        totals: dict[str, dict[str, int]] = {}
        for account in self.accounts.values():
            debit_side = account.balance if account.normal_side == "debit" else -account.balance
            total = totals.setdefault(account.currency, {"debit": 0, "credit": 0})
            total["debit"] += max(debit_side, 0)
            total["credit"] += max(-debit_side, 0)
        return [
            {"currency": currency, "debit": t["debit"], "credit": t["credit"]}
            for currency, t in sorted(totals.items())
        ]


def postings_balances(engine: sa.Engine, ledger_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    """Per account code: (materialized balance, balance recomputed from its postings), in SQL."""
    statement = sa.text(
        """
        SELECT a.code, b.balance,
               coalesce(sum(CASE WHEN p.direction = CASE WHEN a.type IN :debit_normal
                                                         THEN 'debit' ELSE 'credit' END
                                 THEN p.amount ELSE -p.amount END), 0) AS from_postings
        FROM accounts a
        JOIN balances b ON b.account_id = a.id
        LEFT JOIN postings p ON p.account_id = a.id
        WHERE a.ledger_id = :ledger
        GROUP BY a.code, b.balance
        """
    ).bindparams(sa.bindparam("debit_normal", expanding=True))
    with engine.connect() as conn:
        rows = conn.execute(
            statement, {"ledger": ledger_id, "debit_normal": sorted(DEBIT_NORMAL)}
        ).all()
    return {row.code: (int(row.balance), int(row.from_postings)) for row in rows}
