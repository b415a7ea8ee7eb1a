"""The API's answers as models: the one statement of each response's shape (SPEC §3).

The engine renders the answers in SQL (`ledger/sql/rendering.sql`) and the reads in `reads.py`;
these models are what the OpenAPI document says of them (`web/openapi.py` generates its schemas
from here and from the request models in `commands.py`), and `tests/integration/test_openapi.py`
holds every served answer to that document. They are not built at run time: the answers are
already JSON when they leave the database.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from arus.ledger.commands import DATE_SCHEMA, INSTANT_SCHEMA
from arus.ledger.money import Currency
from arus.rules import (
    ACCOUNT_CODE_PATTERN,
    ERROR_STATUS,
    INT64_MAX,
    INT64_MIN,
    AccountType,
    Direction,
    EntryStatus,
)

Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Day = Annotated[str, WithJsonSchema(DATE_SCHEMA)]
Instant = Annotated[str, WithJsonSchema(INSTANT_SCHEMA)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Amount = Annotated[int, Field(ge=1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Sum = Annotated[int, Field(ge=0)]  # a column summed over many accounts: not bounded by int64
Metadata = Annotated[dict[str, object], WithJsonSchema({"type": "object"})]
Absent = SkipJsonSchema[None]  # `| Absent = None`: a key the answer may leave out (never null)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Answer):
    code: Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(ERROR_STATUS)})]
    message: str
    index: Annotated[int, Field(ge=0, description="the failing batch item")] | Absent = None
    first_open_date: (
        Annotated[Day, Field(description="period_closed: the day to post into")] | Absent
    ) = None


class Error(Answer):
    error: ErrorDetail


class Account(Answer):
    id: Uuid
    code: str
    name: str
    type: AccountType
    currency: Currency
    allow_negative: bool
    metadata: Metadata
    balance: Int64
    pending_debits: Count
    pending_credits: Count
    available_balance: int
    version: Annotated[
        Count,
        Field(description="0 at creation, +1 per posted posting applied; send it as a posting's "
              "expected_version to post only if the account has not moved"),
    ]  # fmt: skip
    created_at: Instant


class EntryPosting(Answer):
    account_id: Uuid
    account_code: str
    direction: Direction
    amount: Amount
    currency: Currency
    account_version: Annotated[
        Annotated[int, Field(ge=1, le=INT64_MAX)] | None,
        Field(description="the account's version this posting made; null for a pending "
              "entry's lines (they move no balance)"),
    ]  # fmt: skip


class Entry(Answer):
    id: Uuid
    ledger_seq: Annotated[int, Field(ge=1)]
    status: EntryStatus
    description: str | None
    effective_date: Day
    metadata: Metadata
    postings: list[EntryPosting]
    reverses: Uuid | None
    reversed_by: Uuid | None
    posts: Uuid | None
    posted_by: Uuid | None
    expires_at: Instant | None
    created_at: Instant


class BatchResult(Answer):
    status: int
    entry: Entry | Absent = None
    replayed: bool | Absent = None
    error: ErrorDetail | Absent = None


class BatchResults(Answer):
    results: list[BatchResult]


class AccountPosting(Answer):
    id: int
    entry_id: Uuid
    ledger_seq: int
    direction: Direction
    amount: Amount
    currency: Currency
    balance_after: Int64
    account_version: Annotated[
        int, Field(ge=1, le=INT64_MAX, description="the account's version this posting made")
    ]
    effective_date: Day
    created_at: Instant


class AccountPage(Answer):
    data: list[Account]
    next_cursor: str | None


class EntryPage(Answer):
    data: list[Entry]
    next_cursor: str | None


class AccountPostingPage(Answer):
    data: list[AccountPosting]
    next_cursor: str | None


class CurrencyTotals(Answer):
    """The trial-balance columns of one currency: the trial balance's, a close's, a rollup's."""

    currency: Currency
    debit: Sum
    credit: Sum


class TrialBalanceLine(Answer):
    account_id: Uuid
    account_code: str
    name: str
    type: AccountType
    currency: Currency
    balance: Int64
    debit: Sum
    credit: Sum


class Drift(Answer):
    account_id: Uuid
    account_code: str
    currency: Currency
    materialized_balance: Int64
    postings_balance: int


class TrialBalance(Answer):
    accounts: list[TrialBalanceLine]
    totals: list[CurrencyTotals]
    balanced: bool
    drift: list[Drift]


class Balance(Answer):
    account_id: Uuid
    account_code: str
    currency: Currency
    balance: Int64


class Balances(Answer):
    data: list[Balance]
    next_cursor: str | None
    as_of: Day | Absent = None
    closed_at: Instant | Absent = None
    at: Instant | Absent = None


class AccountBalanceAt(Answer):
    account_id: Uuid
    at: Instant
    balance: Int64


class Close(Answer):
    close_date: Day
    last_ledger_seq: Annotated[
        int, Field(ge=0, description="the journal is sealed through this entry")
    ]
    seal: Annotated[
        str,
        Field(pattern="^[0-9a-f]{64}$", description="SHA-256 chain over the journal since the "
              "previous close (docs/seal.md)"),
    ]  # fmt: skip
    closed_at: Instant
    accounts: Annotated[
        int, Field(ge=0, description="accounts with postings dated through the day")
    ]
    totals: list[CurrencyTotals]
    balanced: bool


class ClosePage(Answer):
    data: list[Close]
    next_cursor: str | None


class Rollup(Answer):
    prefix: Annotated[str, Field(pattern=f"^{ACCOUNT_CODE_PATTERN}$")]
    accounts: Annotated[int, Field(ge=0)]
    totals: Annotated[
        list[CurrencyTotals],
        Field(description="one per currency of the accounts summed, by currency"),
    ]
    at: Annotated[Instant, Field(description="the instant asked for, when asked for")] | Absent = (
        None
    )
    as_of: (
        Annotated[Day, Field(description="the closed day asked for, when asked for")] | Absent
    ) = None


class StatementLine(Answer):
    entry_id: Uuid
    ledger_seq: Annotated[int, Field(ge=1)]
    effective_date: Day
    description: str | None
    direction: Direction
    amount: Amount
    currency: Currency
    balance: Annotated[
        int,
        Field(description="the running balance: opening_balance plus the lines through this "
              "one, across pages"),
    ]  # fmt: skip


class Statement(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    account_id: Uuid
    from_: Annotated[Day, Field(alias="from")]
    to: Day
    opening_balance: Annotated[
        int, Field(description="the posted postings of entries dated before `from`")
    ]
    closing_balance: Annotated[
        int, Field(description="the posted postings of entries dated through `to`, on every page")
    ]
    lines: list[StatementLine]
    next_cursor: str | None


class Health(Answer):
    status: str


class RelayOutcome(BaseModel):
    """One relay run: what it published (its fields are the relay's report)."""


class Closes(BaseModel):
    """Every ledger's close, by ledger."""


class CloseRequest(Answer):
    """`POST /jobs/daily-close`: the day to close (yesterday, UTC, when left out)."""

    date: Day | Absent = None
