"""Reads: accounts, postings, entries and the trial balance, always scoped to one ledger.

Every statement filters by the caller's ledger id, so another ledger's objects are simply
absent (404), never forbidden. Lists are keyset-paginated with an opaque cursor.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from arus.errors import NotFound, ValidationError
from arus.ledger.access import LedgerScope
from arus.ledger.commands import (
    AccountRef,
    parse_account_filters,
    parse_account_ref,
    parse_as_of,
    parse_date,
    parse_entry_filters,
    parse_instant,
)
from arus.ledger.schema import (
    accounts,
    balance_snapshots,
    balances,
    daily_closes,
    entries,
    pending_outcomes,
    pending_postings,
    postings,
)
from arus.rules import ACCOUNT_CODE_PATTERN, INT64_MAX

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
_PAGING = frozenset({"limit", "cursor"})
_CODE_POSITION = re.compile(ACCOUNT_CODE_PATTERN)  # string cursors carry an account code


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "next_cursor": self.next_cursor}


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, expect: str, kind: type[int] | type[str]) -> Any:
    """The position a cursor carries, or None; a forged or foreign cursor is a 422."""
    if cursor is None:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value = position[expect]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        value = None
    valid = (
        isinstance(value, str) and _CODE_POSITION.fullmatch(value) is not None
        if kind is str
        else isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX
    )
    if not valid:
        raise ValidationError("cursor is not a cursor this list returned")
    return value


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if (
        not (raw.isascii() and raw.isdigit() and len(raw) <= 3)
        or not 1 <= int(raw) <= MAX_PAGE_SIZE
    ):
        raise ValidationError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def _page(rows: Sequence[Any], limit: int, cursor_of: Callable[[Any], dict[str, Any]]) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        data=[row[0] for row in rows],
        next_cursor=encode_cursor(cursor_of(rows[-1])) if more and rows else None,
    )


def _account_ref_filter(scope: LedgerScope, ref: AccountRef) -> sa.ColumnElement[bool]:
    if ref.account_id is not None:
        return sa.and_(accounts.c.ledger_id == scope.ledger_id, accounts.c.id == ref.account_id)
    return sa.and_(accounts.c.ledger_id == scope.ledger_id, accounts.c.code == ref.code)


def _account_filter(scope: LedgerScope, raw_ref: str) -> sa.ColumnElement[bool]:
    """The account a path names, in the scope's ledger; a malformed ref matches nothing (404)."""
    try:
        ref: AccountRef | None = parse_account_ref(raw_ref, field="account")
    except ValidationError:
        ref = None
    if ref is None:
        return sa.false()
    if ref.account_id is not None:
        return sa.and_(accounts.c.ledger_id == scope.ledger_id, accounts.c.id == ref.account_id)
    return sa.and_(accounts.c.ledger_id == scope.ledger_id, accounts.c.code == ref.code)


def list_accounts(
    scope: LedgerScope,
    conn: Connection,
    query_args: Sequence[tuple[str, str]] = (),
    *,
    limit: int,
    cursor: str | None,
) -> Page:
    """Accounts by code, filtered by type, currency and metadata (AND)."""
    filters = parse_account_filters(query_args)
    after = decode_cursor(cursor, expect="code", kind=str)
    query = (
        sa.select(sa.func.arus_account_json(accounts.c.id).label("body"), accounts.c.code)
        .where(accounts.c.ledger_id == scope.ledger_id)
        .order_by(accounts.c.code)
        .limit(limit + 1)
    )
    if filters.type is not None:
        query = query.where(accounts.c.type == filters.type)
    if filters.currency is not None:
        query = query.where(accounts.c.currency == filters.currency)
    if filters.metadata:
        query = query.where(accounts.c.metadata.contains(filters.metadata))
    if after is not None:
        query = query.where(accounts.c.code > after)
    rows = scope.fetch(conn, query)
    return _page(rows, limit, lambda row: {"code": row.code})


def get_account(scope: LedgerScope, conn: Connection, raw_ref: str) -> dict[str, Any]:
    rows = scope.fetch(
        conn,
        sa.select(sa.func.arus_account_json(accounts.c.id).label("body")).where(
            _account_filter(scope, raw_ref)
        ),
    )
    if not rows:
        raise NotFound(f"no account {raw_ref}")
    return rows[0].body  # type: ignore[no-any-return]


def account_postings(
    scope: LedgerScope, conn: Connection, raw_ref: str, *, limit: int, cursor: str | None
) -> Page:
    """An account's postings, newest first, each with the balance right after it.

    One statement: the account (none: 404) left-joined to one page of its postings.
    """
    before = decode_cursor(cursor, expect="posting", kind=int)
    account = scope.nested(sa.select(accounts.c.id).where(_account_filter(scope, raw_ref))).lateral(
        "account"
    )
    posting_json = sa.func.jsonb_build_object(
        "id", postings.c.id,
        "entry_id", postings.c.entry_id,
        "ledger_seq", entries.c.ledger_seq,
        "direction", postings.c.direction,
        "amount", postings.c.amount,
        "currency", postings.c.currency,
        "balance_after", postings.c.balance_after,
        "account_version", postings.c.account_version,
        "effective_date", sa.func.to_char(entries.c.effective_date, "YYYY-MM-DD"),
        "created_at", sa.func.arus_timestamp(entries.c.created_at),
    )  # fmt: skip
    # The account is the ledger's, and so are its postings (their foreign key says so).
    page = (
        sa.select(posting_json.label("body"), postings.c.id.label("posting_id"))
        .join_from(postings, entries, entries.c.id == postings.c.entry_id)
        .where(postings.c.account_id == account.c.id)
        .order_by(postings.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        page = page.where(postings.c.id < before)
    page_rows = page.lateral("page")
    rows = scope.fetch(
        conn,
        sa.select(page_rows.c.body, page_rows.c.posting_id, account.c.id)
        .select_from(account.outerjoin(page_rows, sa.true()))
        .order_by(page_rows.c.posting_id.desc()),
    )
    if not rows:
        raise NotFound(f"no account {raw_ref}")
    found = [row for row in rows if row.posting_id is not None]
    return _page(found, limit, lambda row: {"posting": row.posting_id})


def _status_is(status: str) -> sa.ColumnElement[bool]:
    """An entry's status as it reads (arus_entry_json), as a condition on the entry and its
    outcome (`pending_outcomes` left-joined)."""
    now = sa.func.clock_timestamp()
    unresolved = sa.and_(entries.c.pending, pending_outcomes.c.outcome.is_(None))
    lapsed = sa.and_(entries.c.expires_at.is_not(None), entries.c.expires_at <= now)
    return {
        "posted": sa.or_(sa.not_(entries.c.pending), pending_outcomes.c.outcome == "posted"),
        "pending": sa.and_(unresolved, sa.not_(lapsed)),
        "voided": pending_outcomes.c.outcome == "voided",
        "expired": sa.or_(pending_outcomes.c.outcome == "expired", sa.and_(unresolved, lapsed)),
    }[status]


def list_entries(
    scope: LedgerScope,
    conn: Connection,
    query_args: Sequence[tuple[str, str]] = (),
    *,
    limit: int,
    cursor: str | None,
) -> Page:
    """Entries, newest (highest ledger_seq) first, filtered by account, effective date range,
    status and metadata (AND)."""
    filters = parse_entry_filters(query_args)
    before = decode_cursor(cursor, expect="seq", kind=int)
    query = (
        sa.select(sa.func.arus_entry_json(entries.c.id).label("body"), entries.c.ledger_seq)
        .where(entries.c.ledger_id == scope.ledger_id)
        .order_by(entries.c.ledger_seq.desc())
        .limit(limit + 1)
    )
    if filters.account is not None:
        # The account's entries: its postings and its pending postings, by their indexes.
        account = scope.nested(
            sa.select(accounts.c.id).where(_account_ref_filter(scope, filters.account))
        ).scalar_subquery()
        query = query.where(
            entries.c.id.in_(
                sa.union_all(
                    sa.select(postings.c.entry_id).where(postings.c.account_id == account),
                    sa.select(pending_postings.c.entry_id).where(
                        pending_postings.c.account_id == account
                    ),
                )
            )
        )
    if filters.effective_from is not None and filters.effective_from == filters.effective_to:
        # One day as an equality: entries_effective_idx then yields it in ledger_seq order.
        query = query.where(entries.c.effective_date == filters.effective_from)
    else:
        if filters.effective_from is not None:
            query = query.where(entries.c.effective_date >= filters.effective_from)
        if filters.effective_to is not None:
            query = query.where(entries.c.effective_date <= filters.effective_to)
    if filters.status is not None:
        query = query.outerjoin(
            pending_outcomes, pending_outcomes.c.entry_id == entries.c.id
        ).where(_status_is(filters.status))
    if filters.metadata:
        query = query.where(entries.c.metadata.contains(filters.metadata))
    if before is not None:
        query = query.where(entries.c.ledger_seq < before)
    rows = scope.fetch(conn, query)
    return _page(rows, limit, lambda row: {"seq": row.ledger_seq})


def get_entry(scope: LedgerScope, conn: Connection, entry_id: uuid.UUID | None) -> dict[str, Any]:
    # A malformed id still runs the query, matching nothing, so the key is checked first.
    rows = scope.fetch(
        conn,
        sa.select(sa.func.arus_entry_json(entries.c.id).label("body")).where(
            entries.c.ledger_id == scope.ledger_id,
            entries.c.id == entry_id if entry_id is not None else sa.false(),
        ),
    )
    if not rows:
        raise NotFound(f"no entry {entry_id}")
    return rows[0].body  # type: ignore[no-any-return]


def _close_json() -> sa.ColumnElement[Any]:
    """A close as `GET /v1/closes` answers it: its day, its seal and what its report proved."""
    report = daily_closes.c.report
    return sa.func.json_build_object(
        "close_date", sa.func.to_char(daily_closes.c.close_date, "YYYY-MM-DD"),
        "last_ledger_seq", daily_closes.c.last_ledger_seq,
        "seal", daily_closes.c.seal,
        "closed_at", sa.func.arus_timestamp(daily_closes.c.closed_at),
        "accounts", report["accounts"],
        "totals", report["totals"],
        "balanced", report["balanced"],
    )  # fmt: skip


def get_close(scope: LedgerScope, conn: Connection, raw_date: str) -> dict[str, Any]:
    """`GET /v1/closes/{date}`: one close of the ledger, with its seal (SPEC §3.5)."""
    day = parse_date(raw_date, field="date")
    rows = scope.fetch(
        conn,
        sa.select(_close_json().label("body")).where(
            daily_closes.c.ledger_id == scope.ledger_id, daily_closes.c.close_date == day
        ),
    )
    if not rows:
        raise NotFound(f"no daily close for {day.isoformat()}")
    return rows[0].body  # type: ignore[no-any-return]


def list_closes(scope: LedgerScope, conn: Connection, *, limit: int, cursor: str | None) -> Page:
    """`GET /v1/closes`: the ledger's closes, the latest first."""
    before = decode_cursor(cursor, expect="date", kind=str)
    query = (
        sa.select(_close_json().label("body"), daily_closes.c.close_date)
        .where(daily_closes.c.ledger_id == scope.ledger_id)
        .order_by(daily_closes.c.close_date.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(daily_closes.c.close_date < parse_date(before, field="cursor"))
    rows = scope.fetch(conn, query)
    return _page(rows, limit, lambda row: {"date": row.close_date.isoformat()})


def _trial_balance_columns(
    balance: sa.ColumnElement[Any], normal_side: sa.ColumnElement[Any]
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """An account's balance (signed by its normal side) as the trial balance's two columns, the
    one rule the trial balance and rollups share (the close's `totals`, ledger/sql/close.sql,
    state it again in SQL): a debit-normal account's positive balance and a credit-normal
    account's negative one are debits; the others are credits. One column is 0. In numeric,
    so that neither negating a bigint nor summing the columns can overflow."""
    exact = sa.cast(balance, sa.Numeric)
    debit_side = sa.case((normal_side == "debit", exact), else_=-exact)
    return sa.func.greatest(debit_side, 0), sa.func.greatest(-debit_side, 0)


def trial_balance(scope: LedgerScope, conn: Connection) -> dict[str, Any]:
    """Every account's debit or credit balance, totals per currency, and drift.

    One statement, so one snapshot: the materialized balances and the posting sums it compares
    are from the same instant. Drift lists accounts whose materialized balance differs from the
    sum of their postings; `balanced` is true when debits equal credits in every currency.
    """
    sums = scope.nested(
        sa.select(
            postings.c.account_id,
            sa.func.sum(postings.c.amount).filter(postings.c.direction == "debit").label("debits"),
            sa.func.sum(postings.c.amount)
            .filter(postings.c.direction == "credit")
            .label("credits"),
        )
        .where(postings.c.ledger_id == scope.ledger_id)
        .group_by(postings.c.account_id)
    ).lateral("sums")
    debit, credit = _trial_balance_columns(balances.c.balance, balances.c.normal_side)
    rows = scope.fetch(
        conn,
        sa.select(
            accounts.c.id, accounts.c.code, accounts.c.name, accounts.c.type,
            accounts.c.currency, balances.c.balance, balances.c.normal_side,
            debit.label("debit"), credit.label("credit"),
            sa.func.coalesce(sums.c.debits, 0).label("debits"),
            sa.func.coalesce(sums.c.credits, 0).label("credits"),
        )
        .join_from(accounts, balances, balances.c.account_id == accounts.c.id)
        .outerjoin(sums, sums.c.account_id == accounts.c.id)
        .where(accounts.c.ledger_id == scope.ledger_id)
        .order_by(accounts.c.currency, accounts.c.code),
    )  # fmt: skip
    lines, drift = [], []
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        sign = 1 if row.normal_side == "debit" else -1
        from_postings = sign * (int(row.debits) - int(row.credits))
        if from_postings != int(row.balance):
            drift.append(
                {
                    "account_id": str(row.id),
                    "account_code": row.code,
                    "currency": row.currency,
                    "materialized_balance": int(row.balance),
                    "postings_balance": from_postings,
                }
            )
        total = totals.setdefault(row.currency, {"debit": 0, "credit": 0})
        total["debit"] += int(row.debit)
        total["credit"] += int(row.credit)
        lines.append(
            {
                "account_id": str(row.id),
                "account_code": row.code,
                "name": row.name,
                "type": row.type,
                "currency": row.currency,
                "balance": int(row.balance),
                "debit": int(row.debit),
                "credit": int(row.credit),
            }
        )
    return {
        "accounts": lines,
        "totals": [
            {"currency": currency, "debit": t["debit"], "credit": t["credit"]}
            for currency, t in sorted(totals.items())
        ],
        "balanced": all(t["debit"] == t["credit"] for t in totals.values()),
        "drift": drift,
    }


def balances_as_of(
    scope: LedgerScope, conn: Connection, raw_as_of: str | None, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/balances?as_of=`: the snapshot of a closed day, paginated by account code.

    One statement: the day's close (none: 404) left-joined to one page of its snapshot.
    """
    day = parse_as_of(raw_as_of)
    after = decode_cursor(cursor, expect="code", kind=str)
    closed = scope.nested(
        sa.select(daily_closes.c.closed_at).where(
            daily_closes.c.ledger_id == scope.ledger_id, daily_closes.c.close_date == day
        )
    ).lateral("closed")
    snapshot_json = sa.func.json_build_object(
        "account_id", balance_snapshots.c.account_id,
        "account_code", accounts.c.code,
        "currency", balance_snapshots.c.currency,
        "balance", balance_snapshots.c.balance,
    )  # fmt: skip
    page = scope.nested(
        sa.select(snapshot_json.label("body"), accounts.c.code)
        .join_from(balance_snapshots, accounts, accounts.c.id == balance_snapshots.c.account_id)
        .where(
            balance_snapshots.c.ledger_id == scope.ledger_id,
            balance_snapshots.c.close_date == day,
            accounts.c.code > (after or ""),
        )
        .order_by(accounts.c.code)
        .limit(limit + 1)
    ).lateral("page")
    found = scope.fetch(
        conn,
        sa.select(page.c.body, page.c.code, closed.c.closed_at)
        .select_from(closed.outerjoin(page, sa.true()))
        .order_by(page.c.code),
    )
    if not found:
        raise NotFound(f"no daily close for {day.isoformat()}")
    closed_at = found[0].closed_at
    snapshot = _page([row for row in found if row.code is not None], limit,
                     lambda row: {"code": row.code})  # fmt: skip
    return {
        "as_of": day.isoformat(),
        "closed_at": closed_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        **snapshot.to_json(),
    }


def _instant(raw: str | None) -> dt.datetime:
    if raw is None:
        raise ValidationError("at is required: an RFC 3339 date-time, e.g. 2026-12-01T12:00:00Z")
    return parse_instant(raw, field="at")


def _render_instant(at: dt.datetime) -> str:
    # isoformat, not strftime: %Y does not pad years before 1000 to four digits.
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _posted_balance_at(account_id: Any, at: dt.datetime) -> sa.ColumnElement[Any]:
    """The balance right after the account's last posting committed at or before `at`, 0 before
    the first: one lookup in postings_account_instant_idx, however long the history."""
    last = (
        sa.select(postings.c.balance_after)
        .where(postings.c.account_id == account_id, postings.c.created_at <= at)
        .order_by(postings.c.created_at.desc(), postings.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(last, 0)


def account_balance_at(
    scope: LedgerScope, conn: Connection, raw_ref: str, raw_at: str | None
) -> dict[str, Any]:
    """`GET /v1/accounts/{id-or-code}/balance?at=`: the posted balance at that instant."""
    at = _instant(raw_at)
    rows = scope.fetch(
        conn,
        sa.select(accounts.c.id, _posted_balance_at(accounts.c.id, at).label("balance")).where(
            _account_filter(scope, raw_ref)
        ),
    )
    if not rows:
        raise NotFound(f"no account {raw_ref}")
    return {
        "account_id": str(rows[0].id),
        "at": _render_instant(at),
        "balance": int(rows[0].balance),
    }


def balances_at(
    scope: LedgerScope, conn: Connection, raw_at: str | None, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/balances?at=`: every account's posted balance at that instant, by account code
    (accounts created after `at` read 0)."""
    at = _instant(raw_at)
    after = decode_cursor(cursor, expect="code", kind=str)
    body = sa.func.json_build_object(
        "account_id", accounts.c.id,
        "account_code", accounts.c.code,
        "currency", accounts.c.currency,
        "balance", _posted_balance_at(accounts.c.id, at),
    )  # fmt: skip
    query = (
        sa.select(body.label("body"), accounts.c.code)
        .where(accounts.c.ledger_id == scope.ledger_id)
        .order_by(accounts.c.code)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(accounts.c.code > after)
    rows = scope.fetch(conn, query)
    page = _page(rows, limit, lambda row: {"code": row.code})
    return {"at": _render_instant(at), **page.to_json()}


# --- rollups (SPEC §3.5) ------------------------------------------------------------------

# Above every character an account code may hold (codes are ASCII): `code >= prefix AND code <
# prefix || LAST_CODE_POINT` holds every code that starts with the prefix in a collation that
# orders by code point (C, C.UTF-8; ICU and glibc also sort U+10FFFF after ASCII), and it is a
# range of accounts_ledger_code_key in the column's own collation: no pattern operator class.
LAST_CODE_POINT = "\U0010ffff"


@dataclass(frozen=True)
class RollupQuery:
    """`GET /v1/rollups?prefix=P[&at=|&as_of=]`: one prefix, and at most one of the two times."""

    prefix: str
    at: dt.datetime | None = None
    as_of: dt.date | None = None


def parse_rollup_query(pairs: Sequence[tuple[str, str]]) -> RollupQuery:
    """A prefix is the start of an account code: 1-64 of `A-Za-z0-9_.:-`, taken literally (no
    character is a wildcard; `%` and `*`, which no code holds, are refused as such)."""
    args = _single_query_args(pairs, allowed=frozenset({"prefix", "at", "as_of"}))
    prefix = args.get("prefix")
    if prefix is None or prefix == "":
        raise ValidationError("prefix is required: the start of account codes, e.g. wallet:")
    if _CODE_POSITION.fullmatch(prefix) is None:
        raise ValidationError(
            "prefix must be the start of an account code: 1-64 of A-Za-z0-9_.:- "
            "(taken literally: there are no wildcards)"
        )
    if "at" in args and "as_of" in args:
        raise ValidationError("give as_of or at, not both")
    return RollupQuery(
        prefix=prefix,
        at=parse_instant(args["at"], field="at") if "at" in args else None,
        as_of=parse_as_of(args["as_of"]) if "as_of" in args else None,
    )


def _single_query_args(
    pairs: Sequence[tuple[str, str]], *, allowed: frozenset[str]
) -> dict[str, str]:
    args: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise ValidationError(
                f"unknown query parameter {name}; this read takes {', '.join(sorted(allowed))}"
            )
        if name in args:
            raise ValidationError(f"query parameter {name} is given twice")
        args[name] = value
    return args


def _codes_starting_with(scope: LedgerScope, prefix: str) -> sa.ColumnElement[bool]:
    """The scope's accounts whose code starts with `prefix`: one range of
    accounts_ledger_code_key, and starts_with on the rows it yields (a collation that does not
    order by code point may let in a code that does not start with the prefix)."""
    return sa.and_(
        accounts.c.ledger_id == scope.ledger_id,
        accounts.c.code >= prefix,
        accounts.c.code < prefix + LAST_CODE_POINT,
        sa.func.starts_with(accounts.c.code, prefix),
    )


def rollup(
    scope: LedgerScope, conn: Connection, query_args: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """`GET /v1/rollups`: the trial-balance columns summed per currency over the accounts whose
    code starts with the prefix: current balances, the balances at an instant (`at`: accounts
    that existed then), or a closed day's snapshot (`as_of`: the accounts it holds; 404 if the
    day is not closed). One statement, one range of the codes' index; no walk of postings
    beyond one index lookup per account for `at`."""
    query = parse_rollup_query(query_args)
    matching = _codes_starting_with(scope, query.prefix)
    # Each account's balance and normal side, looked up per account of the range by primary
    # key (OFFSET 0 keeps the lateral from being flattened into a join, which the planner may
    # answer by reading every ledger's balances): the cost follows the prefix's accounts.
    balance_row = (
        sa.select(balances.c.normal_side)
        .select_from(balances)
        .where(balances.c.account_id == accounts.c.id)
    )
    if query.as_of is not None:
        balance_row = balance_row.add_columns(balance_snapshots.c.balance).join(
            balance_snapshots,
            sa.and_(
                balance_snapshots.c.ledger_id == scope.ledger_id,
                balance_snapshots.c.close_date == query.as_of,
                balance_snapshots.c.account_id == balances.c.account_id,
            ),
        )
    elif query.at is None:
        balance_row = balance_row.add_columns(balances.c.balance)
    account_balance = balance_row.offset(0).lateral("account_balance")
    balance = account_balance.c.balance if query.at is None else (
        _posted_balance_at(accounts.c.id, query.at))  # fmt: skip
    if query.at is not None:
        matching = sa.and_(matching, accounts.c.created_at <= query.at)
    debit, credit = _trial_balance_columns(balance, account_balance.c.normal_side)
    per_currency = (
        sa.select(
            accounts.c.currency,
            sa.func.count().label("accounts"),
            sa.func.sum(debit).label("debit"),
            sa.func.sum(credit).label("credit"),
        )
        .select_from(accounts.join(account_balance, sa.true()))
        .where(matching)
        .group_by(accounts.c.currency)
    )
    if query.as_of is None:
        rows = scope.fetch(conn, per_currency)
    else:
        # The day's close (none: 404) left-joined to the rollup of its snapshot.
        closed = scope.nested(
            sa.select(daily_closes.c.close_date).where(
                daily_closes.c.ledger_id == scope.ledger_id,
                daily_closes.c.close_date == query.as_of,
            )
        ).lateral("closed")
        totals = scope.nested(per_currency).lateral("totals")
        rows = scope.fetch(
            conn,
            sa.select(closed.c.close_date, totals.c.currency, totals.c.accounts,
                      totals.c.debit, totals.c.credit)
            .select_from(closed.outerjoin(totals, sa.true())),
        )  # fmt: skip
        if not rows:
            raise NotFound(f"no daily close for {query.as_of.isoformat()}")
        rows = [row for row in rows if row.currency is not None]
    rows = sorted(rows, key=lambda row: row.currency)
    answer: dict[str, Any] = {
        "prefix": query.prefix,
        "accounts": sum(int(row.accounts) for row in rows),
        "totals": [
            {"currency": row.currency, "debit": int(row.debit), "credit": int(row.credit)}
            for row in rows
        ],
    }
    if query.at is not None:
        answer["at"] = _render_instant(query.at)
    if query.as_of is not None:
        answer["as_of"] = query.as_of.isoformat()
    return answer


# --- statements (SPEC §3.5) ---------------------------------------------------------------

MAX_STATEMENT_DAYS = 366  # from..to, both days included: a year, leap or not


@dataclass(frozen=True)
class StatementPosition:
    """Where a statement's page ended: its last line's (effective_date, ledger_seq, position)."""

    effective_date: dt.date
    ledger_seq: int
    position: int


@dataclass(frozen=True)
class StatementQuery:
    start: dt.date
    end: dt.date
    after: StatementPosition | None  # the cursor's position: lines after it


@dataclass(frozen=True)
class Statement:
    """One page of an account's statement. `lines` are dicts with the JSON line's fields."""

    account_id: uuid.UUID
    start: dt.date
    end: dt.date
    opening_balance: int
    closing_balance: int
    lines: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "opening_balance": self.opening_balance,
            "closing_balance": self.closing_balance,
            "lines": self.lines,
            "next_cursor": self.next_cursor,
        }


STATEMENT_LINE_FIELDS = ("entry_id", "ledger_seq", "effective_date", "description", "direction",
                         "amount", "currency", "balance")  # fmt: skip


def parse_statement_query(
    pairs: Sequence[tuple[str, str]], cursor: str | None
) -> tuple[StatementQuery, uuid.UUID | None]:
    """`?from=D1&to=D2` (both required, D1 <= D2, at most MAX_STATEMENT_DAYS days with both
    ends), and the account the cursor claims, checked by the caller once the account is known.
    `limit` and `cursor` are among `pairs` too when the request has them: they are parsed apart
    (parse_limit, and `cursor` as given)."""
    args = _single_query_args(pairs, allowed=frozenset({"from", "to", *_PAGING}))
    missing = [name for name in ("from", "to") if name not in args]
    if missing:
        raise ValidationError(f"{' and '.join(missing)} required: a date as YYYY-MM-DD")
    start, end = parse_date(args["from"], field="from"), parse_date(args["to"], field="to")
    if start > end:
        raise ValidationError("from is after to")
    if (end - start).days >= MAX_STATEMENT_DAYS:
        raise ValidationError(f"a statement covers at most {MAX_STATEMENT_DAYS} days")
    claimed = _decode_statement_cursor(cursor, start=start, end=end)
    if claimed is None:
        return StatementQuery(start, end, None), None
    account_id, after = claimed
    return StatementQuery(start, end, after), account_id


def _statement_cursor(account_id: uuid.UUID, query: StatementQuery, last: Any) -> str:
    return encode_cursor({
        "statement": [str(account_id), query.start.isoformat(), query.end.isoformat()],
        "after": [last.effective_date.isoformat(), int(last.ledger_seq), int(last.position)],
    })  # fmt: skip


def _decode_statement_cursor(
    cursor: str | None, *, start: dt.date, end: dt.date
) -> tuple[uuid.UUID, StatementPosition] | None:
    """The account and position a statement cursor carries; a cursor of another statement
    (another range; the account is checked by the caller), forged or foreign, is a 422."""
    if cursor is None:
        return None
    refused = ValidationError("cursor is not a cursor this statement returned")
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        account, claimed_start, claimed_end = position["statement"]
        day, seq, line = position["after"]
        after = StatementPosition(dt.date.fromisoformat(day), seq, line)
        account_id = uuid.UUID(account)
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError, AttributeError):
        raise refused from None
    if (
        [claimed_start, claimed_end] != [start.isoformat(), end.isoformat()]
        or not start <= after.effective_date <= end
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in (seq, line))
        or not (1 <= seq <= INT64_MAX and 1 <= line <= 32767)
    ):
        raise refused
    return account_id, after


def _signed_amount(normal_side: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A posting's amount as it moves its account's balance (signed by the normal side, as
    balances are), in numeric: sums of them cannot overflow."""
    amount = sa.cast(postings.c.amount, sa.Numeric)
    return sa.case((postings.c.direction == normal_side, amount), else_=-amount)


def account_statement(
    scope: LedgerScope,
    conn: Connection,
    raw_ref: str,
    query_args: Sequence[tuple[str, str]] = (),
    *,
    limit: int,
    cursor: str | None,
) -> Statement:
    """`GET /v1/accounts/{id-or-code}/statement?from=&to=`: the account's posted postings of
    entries dated from..to in (effective_date, ledger_seq, position) order, each with the
    running balance; opening = entries dated before `from`, closing = through `to`.

    One statement: the account (none: 404), one pass over its postings (postings_account_idx,
    entries by primary key) for the opening, the closing and the balance before the page, and
    one page of lines. The running balance of a page is computed from the journal, never from
    the cursor (which carries only a position), so the last line of the last page always
    reads the closing balance, even when a back-dated entry lands between two pages.
    """
    query, cursor_account = parse_statement_query(query_args, cursor)
    account = scope.nested(
        sa.select(accounts.c.id, balances.c.normal_side)
        .join_from(accounts, balances, balances.c.account_id == accounts.c.id)
        .where(_account_filter(scope, raw_ref))
    ).lateral("account")
    signed = _signed_amount(account.c.normal_side)
    # Lines up to the cursor's position: those of the pages before this one.
    through_cursor: sa.ColumnElement[bool] = sa.false()
    if query.after is not None:
        through_cursor = sa.tuple_(
            entries.c.effective_date, entries.c.ledger_seq, postings.c.position
        ) <= sa.tuple_(
            sa.literal(query.after.effective_date, sa.Date),
            sa.literal(query.after.ledger_seq, sa.BigInteger),
            sa.literal(query.after.position, sa.SmallInteger),
        )
    # The account is the ledger's, and so are its postings and their entries (foreign keys).
    sums = (
        sa.select(
            sa.func.coalesce(
                sa.func.sum(signed).filter(entries.c.effective_date < query.start), 0
            ).label("opening"),
            sa.func.coalesce(sa.func.sum(signed), 0).label("closing"),
            sa.func.coalesce(
                sa.func.sum(signed).filter(entries.c.effective_date >= query.start, through_cursor),
                0,
            ).label("before_page"),
        )
        .join_from(postings, entries, entries.c.id == postings.c.entry_id)
        .where(postings.c.account_id == account.c.id, entries.c.effective_date <= query.end)
    ).lateral("sums")
    page = (
        sa.select(
            entries.c.id.label("entry_id"), entries.c.ledger_seq, entries.c.effective_date,
            entries.c.description, postings.c.direction, postings.c.amount,
            postings.c.currency, postings.c.position, signed.label("signed_amount"),
        )
        .join_from(postings, entries, entries.c.id == postings.c.entry_id)
        .where(
            postings.c.account_id == account.c.id,
            entries.c.effective_date >= query.start,
            entries.c.effective_date <= query.end,
        )
        .order_by(entries.c.effective_date, entries.c.ledger_seq, postings.c.position)
        .limit(limit + 1)
    )  # fmt: skip
    if query.after is not None:
        page = page.where(sa.not_(through_cursor))
    page_rows = page.lateral("page")
    rows = scope.fetch(
        conn,
        sa.select(account.c.id.label("account_id"), sums, page_rows)
        .select_from(account.join(sums, sa.true()).outerjoin(page_rows, sa.true()))
        .order_by(page_rows.c.effective_date, page_rows.c.ledger_seq, page_rows.c.position),
    )
    if not rows:
        raise NotFound(f"no account {raw_ref}")
    first = rows[0]
    if cursor_account is not None and cursor_account != first.account_id:
        raise ValidationError("cursor is not a cursor this statement returned")
    found = sorted((row for row in rows if row.entry_id is not None),
                   key=lambda row: (row.effective_date, row.ledger_seq, row.position))  # fmt: skip
    more = len(found) > limit
    found = found[:limit]
    running = int(first.opening) + int(first.before_page)
    lines = []
    for row in found:
        running += int(row.signed_amount)
        lines.append({
            "entry_id": str(row.entry_id), "ledger_seq": int(row.ledger_seq),
            "effective_date": row.effective_date.isoformat(), "description": row.description,
            "direction": row.direction, "amount": int(row.amount), "currency": row.currency,
            "balance": running,
        })  # fmt: skip
    return Statement(
        account_id=first.account_id,
        start=query.start,
        end=query.end,
        opening_balance=int(first.opening),
        closing_balance=int(first.closing),
        lines=lines,
        next_cursor=_statement_cursor(first.account_id, query, found[-1]) if more else None,
    )
