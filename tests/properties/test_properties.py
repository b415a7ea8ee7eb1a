"""Property tests: Hypothesis drives the real engine while a model predicts every answer.

`LedgerMachine` is the stateful test (pgledger's model idea, see tests/support/model.py): random
accounts, entries, idempotent replays, key conflicts, overdrafts, unbalanced entries and
reversals go through the real HTTP functions on a fresh ledger per test case, and after every
step the trial balance, every account balance and the entry sequence must equal the model's.

`test_entries_and_reversals_keep_books_balanced` is the simpler property on the posting engine
itself: whatever sequence of balanced entries and reversals is sent, every currency nets to zero
and every materialized balance equals the sum of its postings, recomputed here in SQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis
import sqlalchemy as sa
from arus import errors
from arus.jobs.verify import verify_ledger
from arus.ledger import commands, gateway
from arus.platform.config import Settings
from arus.web.app import ACCOUNTS_ROUTE, ENTRIES_ROUTE, REVERSE_ROUTE, operation
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.ledgers import Api, Ledger, new_ledger
from tests.support.model import ACCOUNT_TYPES, LedgerModel, Line, postings_balances

Draw = Callable[[st.SearchStrategy[Any]], Any]  # data.draw or a composite's draw

CURRENCIES = ("USD", "EUR")
MAX_ACCOUNTS = 10  # 4 base accounts and up to 6 random ones
MAX_GROUP_TOTAL_MINOR = 300
# Debit and credit legs of one currency group; at most 6 postings in all (SPEC allows 100).
ONE_GROUP_SHAPES = ((1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 3))
TWO_GROUP_SHAPES = ((1, 1), (1, 2), (2, 1))

MACHINE_SETTINGS = hypothesis.settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every kind of step the machine must have exercised at least once over a run.
MACHINE_OUTCOMES = (
    "account 201",
    "entry 201",
    "entry insufficient_funds",
    "overdraft insufficient_funds",
    "unbalanced unbalanced_entry",
    "replay 200",
    "conflict idempotency_conflict",
    "reversal 201",
    "reversal already_reversed",
    "reversal insufficient_funds",
    "duplicate duplicate_account_code",
    "hold 201",
    "hold insufficient_funds",
    "capture 201",
    "void 200",
    "resolve entry_not_pending",
    "expiry 201",
    "resolve pending_expired",
    "reversal entry_not_posted",
)
MAX_EXPIRING_HOLDS = 2  # per example: each waits out its hold's 0.2 s
EXPIRY_S = 0.2


def split_amount(draw: Draw, total_minor: int, parts: int) -> list[int]:
    """total_minor split into `parts` positive amounts."""
    if parts == 1:
        return [total_minor]
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, total_minor - 1),
                min_size=parts - 1,
                max_size=parts - 1,
                unique=True,
            )
        )
    )
    return [b - a for a, b in zip([0, *cuts], [*cuts, total_minor], strict=True)]


def draw_balanced_lines(draw: Draw, pools: dict[str, list[str]]) -> tuple[Line, ...]:
    """2..6 postings over the pools' accounts, balanced in every currency, in random order."""
    groups = draw(st.integers(1, 2))
    shapes = ONE_GROUP_SHAPES if groups == 1 else TWO_GROUP_SHAPES
    lines: list[Line] = []
    for _ in range(groups):
        currency = draw(st.sampled_from(sorted(pools)))
        n_debit, n_credit = draw(st.sampled_from(shapes))
        total = draw(st.integers(3, MAX_GROUP_TOTAL_MINOR))
        for direction, parts in (("debit", n_debit), ("credit", n_credit)):
            for amount in split_amount(draw, total, parts):
                lines.append(Line(draw(st.sampled_from(pools[currency])), direction, amount))
    return tuple(draw(st.permutations(lines)))


def error_code(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"]["code"])
    return None


@dataclass(frozen=True)
class Sent:
    """A mutation the ledger committed: what was sent, and what it answered."""

    path: str
    key: str
    body: dict[str, Any]
    response: dict[str, Any]


class LedgerMachine(RuleBasedStateMachine):
    """The real ledger and LedgerModel side by side; every answer and balance must agree."""

    def __init__(self, api: Api, settings: Settings, engine: sa.Engine, tally: Counter[str]):
        super().__init__()
        self.api = api
        self.engine = engine
        self.tally = tally
        self.ledger: Ledger = new_ledger(settings, "property")
        self.model = LedgerModel()
        self.sent: list[Sent] = []
        self.counter = itertools.count(1)
        self.expiring = 0

    # -- helpers ---------------------------------------------------------------------------

    def fresh_key(self) -> str:
        return f"key-{next(self.counter)}"

    def pools(self) -> dict[str, list[str]]:
        pools: dict[str, list[str]] = {}
        for code, account in self.model.accounts.items():
            pools.setdefault(account.currency, []).append(code)
        return pools

    def send(self, path: str, key: str, body: dict[str, Any]) -> tuple[int, Any, Any]:
        response = self.api.post(path, key=self.ledger.write_key, idempotency_key=key, json=body)
        return response.status_code, response.get_json(), response.headers

    def expect(
        self, step: str, status: int, body: Any, want_status: int, want_code: str | None
    ) -> None:
        got = (status, error_code(body))
        assert got == (want_status, want_code), (
            f"{step}: engine answered {got}, model predicts {(want_status, want_code)}; "
            f"body={body} balances={self.model.balances()}"
        )
        self.tally[f"{step} {want_code or want_status}"] += 1

    def post_lines(self, step: str, lines: tuple[Line, ...]) -> str | None:
        """Send lines as a new entry; the model predicts the answer and applies a 201.

        Returns the new entry's id, or None when the entry was (rightly) refused."""
        predicted = self.model.predict_entry(lines)
        key = self.fresh_key()
        body = {"description": f"{step} {key}", "postings": [line.as_json() for line in lines]}
        status, answer, _ = self.send("/v1/entries", key, body)
        if predicted is None:
            self.expect(step, status, answer, 201, None)
            got = [(p["account_code"], p["direction"], p["amount"]) for p in answer["postings"]]
            assert got == [(ln.account, ln.direction, ln.amount_minor) for ln in lines], answer
            self.model.apply(answer["id"], lines)
            self.sent.append(Sent("/v1/entries", key, body, answer))
            return str(answer["id"])
        self.expect(step, status, answer, 422, predicted)
        return None

    # -- rules -----------------------------------------------------------------------------

    def add_account(self, code: str, type_: str, currency: str, allow_negative: bool) -> None:
        body = {"code": code, "name": code, "type": type_, "currency": currency,
                "allow_negative": allow_negative}  # fmt: skip
        status, answer, _ = self.send("/v1/accounts", self.fresh_key(), body)
        self.expect("account", status, answer, 201, None)
        got = (answer["code"], answer["type"], answer["balance"], answer["allow_negative"])
        assert got == (code, type_, 0, allow_negative), answer
        self.model.add_account(
            code=code, type_=type_, currency=currency, allow_negative=allow_negative
        )

    @initialize()
    def base_accounts(self) -> None:
        """Per currency, a cash account that cannot go negative and a capital that can; a code
        is unique per ledger (409 duplicate_account_code)."""
        for currency in CURRENCIES:
            self.add_account(f"cash-{currency}", "asset", currency, False)
            self.add_account(f"capital-{currency}", "equity", currency, True)
        body = {"code": "cash-USD", "name": "again", "type": "revenue", "currency": "EUR"}
        status, answer, _ = self.send("/v1/accounts", self.fresh_key(), body)
        self.expect("duplicate", status, answer, 409, "duplicate_account_code")

    @rule(
        type_=st.sampled_from(ACCOUNT_TYPES),
        currency=st.sampled_from(CURRENCIES),
        allow_negative=st.booleans(),
        reuse_code=st.integers(0, 7),
    )
    def create_account(
        self, type_: str, currency: str, allow_negative: bool, reuse_code: int
    ) -> None:
        """A new account (201); now and then, or once the ledger is full, a code already
        taken (409)."""
        if reuse_code == 0 or len(self.model.accounts) >= MAX_ACCOUNTS:
            taken = sorted(self.model.accounts)[len(self.model.accounts) // 2]
            body = {"code": taken, "name": "again", "type": type_, "currency": currency}
            status, answer, _ = self.send("/v1/accounts", self.fresh_key(), body)
            self.expect("duplicate", status, answer, 409, "duplicate_account_code")
            return
        self.add_account(f"acct-{len(self.model.accounts)}", type_, currency, allow_negative)

    @rule(data=st.data())
    def post_entry(self, data: st.DataObject) -> None:
        """A random balanced entry: the model says 201 or exactly insufficient_funds."""
        self.post_lines("entry", draw_balanced_lines(data.draw, self.pools()))

    @precondition(
        lambda self: any(
            not a.allow_negative
            and sum(b.currency == a.currency for b in self.model.accounts.values()) > 1
            for a in self.model.accounts.values()
        )
    )
    @rule(data=st.data())
    def overdraw(self, data: st.DataObject) -> None:
        """Take a non-negative account exactly past zero: always insufficient_funds."""
        pools = self.pools()
        candidates = sorted(
            a.code
            for a in self.model.accounts.values()
            if not a.allow_negative and len(pools[a.currency]) > 1
        )
        victim = self.model.accounts[data.draw(st.sampled_from(candidates))]
        other = data.draw(st.sampled_from([c for c in pools[victim.currency] if c != victim.code]))
        amount = victim.balance + data.draw(st.integers(1, 50))
        against = "credit" if victim.normal_side == "debit" else "debit"
        back = "debit" if against == "credit" else "credit"
        lines = (Line(victim.code, against, amount), Line(other, back, amount))
        lines = tuple(data.draw(st.permutations(lines)))
        assert self.model.predict_entry(lines) == "insufficient_funds", lines
        self.post_lines("overdraft", lines)

    @precondition(
        lambda self: any(
            not a.allow_negative and a.balance > 0 for a in self.model.accounts.values()
        )
    )
    @rule(data=st.data())
    def spend_down(self, data: st.DataObject) -> None:
        """Move part of a funded non-negative account away (so reversals can overdraw it)."""
        pools = self.pools()
        funded = sorted(
            a.code for a in self.model.accounts.values() if not a.allow_negative and a.balance > 0
        )
        source = self.model.accounts[data.draw(st.sampled_from(funded))]
        other = data.draw(st.sampled_from(pools[source.currency]))
        amount = data.draw(st.integers(1, source.balance))
        against = "credit" if source.normal_side == "debit" else "debit"
        back = "debit" if against == "credit" else "credit"
        self.post_lines("entry", (Line(source.code, against, amount), Line(other, back, amount)))

    @rule(data=st.data())
    def post_unbalanced(self, data: st.DataObject) -> None:
        """A balanced entry with one amount raised: unbalanced_entry, whatever the balances."""
        lines = list(draw_balanced_lines(data.draw, self.pools()))
        index = data.draw(st.integers(0, len(lines) - 1))
        bumped = lines[index]
        lines[index] = Line(
            bumped.account, bumped.direction, bumped.amount_minor + data.draw(st.integers(1, 99))
        )
        assert self.model.predict_entry(tuple(lines)) == "unbalanced_entry", lines
        self.post_lines("unbalanced", tuple(lines))

    @precondition(lambda self: len(self.sent) > 0)
    @rule(data=st.data())
    def reuse_key(self, data: st.DataObject) -> None:
        """A used key: with the same body, the original response again (200, Idempotent-Replayed);
        with another body or on another route, 409 idempotency_conflict."""
        sent = data.draw(st.sampled_from(self.sent))
        status, answer, headers = self.send(sent.path, sent.key, sent.body)
        self.expect("replay", status, answer, 200, None)
        assert headers.get("Idempotent-Replayed") == "true", dict(headers)
        assert answer == sent.response, f"replay of {sent.key}: {answer} != {sent.response}"

        if data.draw(st.booleans()) and not sent.path.endswith("/void"):  # void takes no body
            path, body = sent.path, {**sent.body, "description": f"changed {self.fresh_key()}"}
        elif sent.path == "/v1/entries":
            path, body = f"/v1/entries/{sent.response['id']}/reverse", {}
        else:
            path, body = "/v1/entries", {k: v for k, v in sent.body.items() if k != "description"}
            body["postings"] = [line.as_json() for line in self.model.mirrored(sent.response["id"])]
        status, answer, _ = self.send(path, sent.key, body)
        self.expect("conflict", status, answer, 409, "idempotency_conflict")

    @precondition(lambda self: len(self.model.entries) > 0)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """Reverse any entry: 201, or already_reversed, or insufficient_funds, as predicted."""
        self.reverse_entry(data.draw(st.sampled_from(list(self.model.entries))), data)

    @rule(currency=st.sampled_from(CURRENCIES), data=st.data())
    def reverse_after_spending(self, currency: str, data: st.DataObject) -> None:
        """Fund the base cash account, spend part of it, reverse the funding: it overdraws."""
        cash, capital = f"cash-{currency}", f"capital-{currency}"
        funding = data.draw(st.integers(1, MAX_GROUP_TOTAL_MINOR))
        entry_id = self.post_lines(
            "entry", (Line(cash, "debit", funding), Line(capital, "credit", funding))
        )
        assert entry_id is not None, "funding a base cash account from capital always commits"
        balance = self.model.accounts[cash].available
        spend = data.draw(st.integers(balance - funding + 1, balance))
        spent = self.post_lines(
            "entry", (Line(capital, "debit", spend), Line(cash, "credit", spend))
        )
        assert spent is not None, "spending at most the balance always commits"
        assert self.model.predict_reversal(entry_id) == "insufficient_funds", self.model.balances()
        self.reverse_entry(entry_id, data)

    # -- holds (SPEC §3.2) ---------------------------------------------------------------------

    def hold_lines(self, step: str, lines: tuple[Line, ...], **extra: object) -> str | None:
        """Send lines as a pending entry; the model predicts the answer and holds a 201."""
        predicted = self.model.predict_entry(lines, pending=True)
        key = self.fresh_key()
        body = {"status": "pending", "postings": [line.as_json() for line in lines], **extra}
        status, answer, _ = self.send("/v1/entries", key, body)
        if predicted is not None:
            self.expect(step, status, answer, 422, predicted)
            return None
        self.expect(step, status, answer, 201, None)
        assert answer["status"] == "pending", answer
        self.model.hold(answer["id"], lines)
        self.sent.append(Sent("/v1/entries", key, body, answer))
        return str(answer["id"])

    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        """A random balanced hold: 201 or insufficient_funds on the available balance."""
        self.hold_lines("hold", draw_balanced_lines(data.draw, self.pools()))

    @rule(currency=st.sampled_from(CURRENCIES), data=st.data())
    def hold_past_available(self, currency: str, data: st.DataObject) -> None:
        """Hold more than the base cash account has available: always insufficient_funds."""
        cash, capital = f"cash-{currency}", f"capital-{currency}"
        amount = self.model.accounts[cash].available + data.draw(st.integers(1, 50))
        lines = (Line(capital, "debit", amount), Line(cash, "credit", amount))
        assert self.model.predict_entry(lines, pending=True) == "insufficient_funds"
        self.hold_lines("hold", lines)

    def funded(self, currency: str) -> tuple[str, str, int]:
        """The base cash and capital of a currency, the cash funded if it has nothing available."""
        cash, capital = f"cash-{currency}", f"capital-{currency}"
        if self.model.accounts[cash].available == 0:
            self.post_lines("entry", (Line(cash, "debit", 100), Line(capital, "credit", 100)))
        return cash, capital, self.model.accounts[cash].available

    @rule(currency=st.sampled_from(CURRENCIES), data=st.data())
    def hold_within_available(self, currency: str, data: st.DataObject) -> None:
        """Reserve part of what the base cash account has available: always 201."""
        cash, capital, available = self.funded(currency)
        amount = data.draw(st.integers(1, available))
        lines = (Line(capital, "debit", amount), Line(cash, "credit", amount))
        assert self.hold_lines("hold", lines) is not None, "a hold within available commits"

    def pending_entries(self) -> list[str]:
        return [e.entry_id for e in self.model.entries.values() if e.pending]

    def resolve(self, entry_id: str, action: str, data: st.DataObject | None = None) -> None:
        predicted = self.model.predict_resolution(entry_id)
        key = self.fresh_key()
        path = f"/v1/entries/{entry_id}/{action}"
        status, answer, _ = self.send(path, key, {})
        if predicted is not None:
            self.expect("resolve", status, answer, 409, predicted)
            return
        if action == "post":
            self.expect("capture", status, answer, 201, None)
            assert answer["posts"] == entry_id and answer["status"] == "posted", answer
            self.model.post_hold(entry_id, answer["id"])
        else:
            self.expect("void", status, answer, 200, None)
            assert answer["id"] == entry_id and answer["status"] == "voided", answer
            self.model.release(entry_id, "voided")
        self.sent.append(Sent(path, key, {}, answer))
        served = self.api.get(f"/v1/entries/{entry_id}", key=self.ledger.read_key).get_json()
        assert served["status"] == self.model.entries[entry_id].status, served
        if data is not None and data.draw(st.integers(0, 2)) > 0:  # usually, a second try
            self.resolve(entry_id, data.draw(st.sampled_from(("post", "void"))))

    @precondition(lambda self: any(e.pending for e in self.model.entries.values()))
    @rule(action=st.sampled_from(("post", "void")), data=st.data())
    def resolve_hold(self, action: str, data: st.DataObject) -> None:
        """Post or void a pending entry: once, then entry_not_pending (or pending_expired).
        Mostly one still pending; now and then any."""
        every = self.pending_entries()
        active = [e for e in every if self.model.entries[e].status == "pending"]
        pool = active if active and data.draw(st.integers(0, 3)) > 0 else every
        self.resolve(data.draw(st.sampled_from(pool)), action, data)

    @precondition(lambda self: any(e.status == "pending" for e in self.model.entries.values()))
    @rule(data=st.data())
    def capture_a_hold(self, data: st.DataObject) -> None:
        """Post a hold still pending: 201. (resolve_hold draws post or void; a run once drew
        void at every turn and never captured, so capture has a rule of its own.)"""
        active = [e for e in self.pending_entries() if self.model.entries[e].status == "pending"]
        self.resolve(data.draw(st.sampled_from(active)), "post")

    @precondition(lambda self: any(e.pending for e in self.model.entries.values()))
    @rule(data=st.data())
    def reverse_a_hold(self, data: st.DataObject) -> None:
        """A pending entry, whatever its status, is never reversed: entry_not_posted."""
        self.reverse_entry(data.draw(st.sampled_from(self.pending_entries())), data)

    @precondition(lambda self: self.expiring < MAX_EXPIRING_HOLDS)
    @rule(currency=st.sampled_from(CURRENCIES), data=st.data())
    def hold_expires(self, currency: str, data: st.DataObject) -> None:
        """A hold with an expires_at 0.2 s ahead: from that instant it is expired, its funds are
        available again and post or void is pending_expired, with no sweep having run."""
        self.expiring += 1
        cash, capital, available = self.funded(currency)
        amount = data.draw(st.integers(1, available))
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=EXPIRY_S)
        entry_id = self.hold_lines(
            "expiry", (Line(capital, "debit", amount), Line(cash, "credit", amount)),
            expires_at=expires_at.isoformat(),
        )  # fmt: skip
        assert entry_id is not None, "holding at most the available balance always commits"
        time.sleep(max(0.0, (expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
        self.model.release(entry_id, "expired")
        self.resolve(entry_id, data.draw(st.sampled_from(("post", "void"))))

    def reverse_entry(self, entry_id: str, data: st.DataObject) -> None:
        predicted = self.model.predict_reversal(entry_id)
        key = self.fresh_key()
        body = data.draw(st.sampled_from([{}, {"description": f"undo {key}"}]))
        path = f"/v1/entries/{entry_id}/reverse"
        status, answer, _ = self.send(path, key, body)
        if predicted is None:
            self.expect("reversal", status, answer, 201, None)
            mirrored = self.model.mirrored(entry_id)
            got = [(p["account_code"], p["direction"], p["amount"]) for p in answer["postings"]]
            assert answer["reverses"] == entry_id, answer
            assert got == [(ln.account, ln.direction, ln.amount_minor) for ln in mirrored], answer
            self.model.apply(answer["id"], mirrored, reverses=entry_id)
            self.sent.append(Sent(path, key, body, answer))
            original = self.api.get(f"/v1/entries/{entry_id}", key=self.ledger.read_key)
            assert original.get_json()["reversed_by"] == answer["id"], original.get_json()
            if data.draw(st.integers(0, 2)) > 0:  # usually, a second reversal with a fresh key
                self.reverse_entry(entry_id, data)
        else:
            want_status = 409 if predicted in ("already_reversed", "entry_not_posted") else 422
            self.expect("reversal", status, answer, want_status, predicted)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def books_equal_model(self) -> None:
        response = self.api.get("/v1/trial-balance", key=self.ledger.read_key)
        assert response.status_code == 200, response.get_json()
        trial = response.get_json()
        balances = {line["account_code"]: line["balance"] for line in trial["accounts"]}
        assert balances == self.model.balances(), (
            f"balances engine={balances} model={self.model.balances()}"
        )
        assert trial["totals"] == self.model.totals(), (
            f"totals engine={trial['totals']} model={self.model.totals()}"
        )
        assert trial["balanced"] is True and trial["drift"] == [], (
            f"balanced={trial['balanced']} drift={trial['drift']} totals={trial['totals']}"
        )

    @invariant()
    def holds_equal_model(self) -> None:
        accounts = self.api.get("/v1/accounts?limit=500", key=self.ledger.read_key).get_json()
        holds = {
            a["code"]: (a["pending_debits"], a["pending_credits"], a["available_balance"])
            for a in accounts["data"]
        }
        assert holds == self.model.holds(), f"holds engine={holds} model={self.model.holds()}"

    @invariant()
    def journal_equals_model(self) -> None:
        with self.engine.connect() as conn:
            report = verify_ledger(conn, self.ledger.ledger_id)
        assert report["entries"] == len(self.model.entries), (
            f"entries engine={report['entries']} model={len(self.model.entries)}"
        )
        assert report["ok"], f"verify={report}"


def test_ledger_agrees_with_model(api: Api, settings: Settings, engine: sa.Engine) -> None:
    """Stateful: every status, error code and balance the engine gives equals the model's."""
    tally: Counter[str] = Counter()
    run_state_machine_as_test(
        lambda: LedgerMachine(api, settings, engine, tally), settings=MACHINE_SETTINGS
    )
    missing = [outcome for outcome in MACHINE_OUTCOMES if tally[outcome] == 0]
    assert not missing, f"steps never exercised={missing} tally={dict(tally)}"
    print(
        f"\nPROPERTY ledger machine: examples<={MACHINE_SETTINGS.max_examples} "
        f"checked_requests={sum(tally.values())} "
        + " ".join(f"{k.replace(' ', ':')}={v}" for k, v in sorted(tally.items()))
    )


# -- the simpler property, straight on the posting engine ------------------------------------

FIXED_ACCOUNTS = (
    # code, type, currency, allow_negative
    ("cash", "asset", "USD", False),
    ("loan", "liability", "USD", True),
    ("fees", "expense", "USD", False),
    ("capital", "equity", "USD", True),
    ("bank-eur", "asset", "EUR", True),
    ("sales-eur", "revenue", "EUR", False),
)
FIXED_POOLS = {
    currency: [code for code, _, cur, _ in FIXED_ACCOUNTS if cur == currency]
    for currency in CURRENCIES
}


@st.composite
def operations(draw: Draw) -> list[tuple[str, Any]]:
    """A sequence of new balanced entries and reversals (of the n-th committed entry)."""
    count = draw(st.integers(1, 15))
    ops: list[tuple[str, Any]] = []
    for _ in range(count):
        if draw(st.integers(0, 3)) == 0:
            # Small indexes often name an entry reversed before: already_reversed.
            ops.append(("reverse", draw(st.integers(0, 2) | st.integers(0, 30))))
        else:
            ops.append(("post", draw_balanced_lines(draw, FIXED_POOLS)))
    return ops


def net_per_currency(engine: sa.Engine, ledger_id: uuid.UUID) -> dict[str, int]:
    """sum(debits) - sum(credits) of every posting, per currency, straight from the journal."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT currency, sum(CASE direction WHEN 'debit' THEN amount ELSE -amount END) "
                "FROM postings WHERE ledger_id = :l GROUP BY currency"
            ),
            {"l": ledger_id},
        ).all()
    return {str(currency): int(net) for currency, net in rows}


GIVEN_SETTINGS = hypothesis.settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def run_operations(
    ops: list[tuple[str, Any]], settings: Settings, engine: sa.Engine, posting_engine: sa.Engine
) -> Counter[str]:
    """Send ops to a fresh ledger through the gateway, check the books, return the outcomes."""
    ledger = new_ledger(settings, "given")
    for code, type_, currency, allow_negative in FIXED_ACCOUNTS:
        body = {"code": code, "name": code, "type": type_, "currency": currency,
                "allow_negative": allow_negative}  # fmt: skip
        gateway.create_account(
            posting_engine,
            credentials=ledger.credentials,
            account=commands.parse_new_account(body),
            idempotency_key=None,
            request_body=body,
            operation=operation(ACCOUNTS_ROUTE),
        )
    committed: list[str] = []
    outcomes: Counter[str] = Counter()
    for op, arg in ops:
        key = uuid.uuid4().hex
        try:
            if op == "post":
                body = {"postings": [line.as_json() for line in arg]}
                result = gateway.post_entry(
                    posting_engine,
                    credentials=ledger.credentials,
                    entry=commands.parse_new_entry(body),
                    idempotency_key=key,
                    request_body=body,
                    operation=operation(ENTRIES_ROUTE),
                )
            elif committed:
                target = uuid.UUID(committed[arg % len(committed)])
                result = gateway.reverse_entry(
                    posting_engine,
                    credentials=ledger.credentials,
                    reversal=commands.parse_reversal(target, {}),
                    idempotency_key=key,
                    request_body={},
                    operation=operation(REVERSE_ROUTE, entry_id=target),
                )
            else:
                continue
        except (errors.InsufficientFunds, errors.AlreadyReversed) as exc:
            outcomes[f"{op} {exc.code}"] += 1
            continue
        assert result.status == 201 and not result.replayed, result
        committed.append(result.body["id"])
        outcomes[f"{op} 201"] += 1
        if op == "reverse":  # a second reversal of the same entry, with a fresh key, is refused
            try:
                again = gateway.reverse_entry(
                    posting_engine,
                    credentials=ledger.credentials,
                    reversal=commands.parse_reversal(target, {}),
                    idempotency_key=uuid.uuid4().hex,
                    request_body={},
                    operation=operation(REVERSE_ROUTE, entry_id=target),
                )
            except errors.AlreadyReversed as exc:
                outcomes[f"{op} {exc.code}"] += 1
            else:
                raise AssertionError(f"a second reversal of {target} committed: {again}")

    figures = f"ops={len(ops)} outcomes={dict(outcomes)}"
    nets = net_per_currency(engine, ledger.ledger_id)
    assert all(net == 0 for net in nets.values()), f"{figures} net per currency={nets}"
    balances = postings_balances(engine, ledger.ledger_id)
    drifted = {code: pair for code, pair in balances.items() if pair[0] != pair[1]}
    assert drifted == {}, f"{figures} (materialized, sum of postings)={drifted}"
    overdrawn = {
        code: balances[code][0]
        for code, _, _, allow_negative in FIXED_ACCOUNTS
        if not allow_negative and balances[code][0] < 0
    }
    assert overdrawn == {}, f"{figures} non-negative accounts below zero={overdrawn}"
    with engine.connect() as conn:
        report = verify_ledger(conn, ledger.ledger_id)
    assert report["ok"] and report["entries"] == len(committed), f"{figures} verify={report}"
    return outcomes


def test_entries_and_reversals_keep_books_balanced(
    settings: Settings, engine: sa.Engine, posting_engine: sa.Engine
) -> None:
    """Any sequence of balanced entries and reversals nets to zero with zero drift."""
    tally: Counter[str] = Counter()

    @GIVEN_SETTINGS
    @given(ops=operations())
    def books_stay_balanced(ops: list[tuple[str, Any]]) -> None:
        tally.update(run_operations(ops, settings, engine, posting_engine))

    books_stay_balanced()
    # Not a vacuous run: entries were committed and refused, reversals made and refused.
    wanted = ("post 201", "post insufficient_funds", "reverse 201", "reverse already_reversed")
    missing = [outcome for outcome in wanted if tally[outcome] == 0]
    assert not missing, f"paths never exercised={missing} tally={dict(tally)}"
    print(f"\nPROPERTY given: outcomes={dict(sorted(tally.items()))}")
