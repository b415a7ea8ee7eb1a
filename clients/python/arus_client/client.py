"""The Python client for the Arus HTTP API (SPEC §3): typed, retrying, paginating.

Part of the `arus-client` distribution (`pip install ./clients/python`): it needs only httpx and
imports nothing of the server, so a consumer app uses it without the server's dependencies.

    with ArusClient("http://127.0.0.1:8080", api_key) as arus:
        arus.create_account(code="cash", name="Cash", type="asset", currency="USD")
        entry = arus.post_entry(
            [NewPosting("cash", "debit", 1999), NewPosting("sales", "credit", 1999)],
            idempotency_key="order-42",
        )

Retries. Every mutation carries an Idempotency-Key (the caller's, or one generated per logical
call), and every retry of that call sends the same key, so a retry after a lost response can
only replay the entry the server already wrote, never write a second one. Retried: connection
failures, timeouts, a connection dropped before the response arrived (httpx.RemoteProtocolError)
and any 5xx; each after an exponentially growing, fully jittered delay, for at most
`RetryPolicy.max_attempts` attempts. A 4xx is the server's final answer and is never retried.
Reads are retried the same way (they change nothing).

Errors. Every error body `{"error": {"code", "message"}}` becomes the exception class for its
code (a subclass of ArusApiError carrying status, code, message and the request id if the
response had one). A failure to reach the server after the last attempt is ArusConnectionError,
which keeps the idempotency key so the caller can try again later with it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

__all__ = [
    "Account",
    "AccountPosting",
    "AlreadyReversedError",
    "ArusApiError",
    "ArusClient",
    "ArusClientError",
    "ArusConnectionError",
    "BalanceSnapshot",
    "BalancesAt",
    "BatchEntry",
    "BatchResult",
    "Close",
    "CurrencyMismatchError",
    "DuplicateAccountCodeError",
    "Entry",
    "EntryNotPendingError",
    "EntryNotPostedError",
    "EntryPosting",
    "ForbiddenError",
    "IdempotencyConflictError",
    "IdempotencyKeyRequiredError",
    "InsufficientFundsError",
    "InternalServerError",
    "InvalidJsonError",
    "MethodNotAllowedError",
    "NewPosting",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PendingExpiredError",
    "PeriodClosedError",
    "RetryPolicy",
    "Rollup",
    "RollupTotal",
    "ServerError",
    "ServiceUnavailableError",
    "SnapshotBalance",
    "Statement",
    "StatementCsv",
    "StatementLine",
    "TrialBalance",
    "TrialBalanceLine",
    "UnauthenticatedError",
    "UnbalancedEntryError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VersionConflictError",
]

log = logging.getLogger("arus_client.client")

USER_AGENT = "arus-python-client/0.1"
INT64_MAX = 9_223_372_036_854_775_807
MAX_PAGES = 1_000_000  # a bound on any iterator: a server that never ends a list is a bug
REQUEST_ID_HEADERS = ("X-Request-Id", "X-Cloud-Trace-Context")

AccountType = Literal["asset", "expense", "liability", "equity", "revenue"]
Direction = Literal["debit", "credit"]
EntryStatus = Literal["posted", "pending", "voided", "expired"]
T = TypeVar("T")

# --- errors ---------------------------------------------------------------------------------


class ArusClientError(Exception):
    """Base of everything this client raises for a failed call."""


class ArusConnectionError(ArusClientError):
    """The server could not be reached (or its answer was lost) on every attempt.

    The request may or may not have been applied: retry later with `idempotency_key` (it is
    None for reads) and the server will either apply it once or replay what it did.
    """

    def __init__(
        self, message: str, *, attempts: int, idempotency_key: str | None, cause: Exception
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.idempotency_key = idempotency_key
        self.cause = cause


class ArusApiError(ArusClientError):
    """The server answered with an error: `{"error": {"code", "message"}}` and a status."""

    CODE: ClassVar[str] = ""  # the SPEC §3 code a subclass stands for; "" for the base

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        # The error object's other fields (period_closed: first_open_date; a batch: index).
        self.details: dict[str, Any] = dict(details or {})


class UnauthenticatedError(ArusApiError):
    CODE = "unauthenticated"


class ForbiddenError(ArusApiError):
    CODE = "forbidden"


class NotFoundError(ArusApiError):
    CODE = "not_found"


class MethodNotAllowedError(ArusApiError):
    CODE = "method_not_allowed"


class IdempotencyConflictError(ArusApiError):
    CODE = "idempotency_conflict"


class AlreadyReversedError(ArusApiError):
    CODE = "already_reversed"


class DuplicateAccountCodeError(ArusApiError):
    CODE = "duplicate_account_code"


class PayloadTooLargeError(ArusApiError):
    CODE = "payload_too_large"


class UnsupportedMediaTypeError(ArusApiError):
    CODE = "unsupported_media_type"


class InvalidJsonError(ArusApiError):
    CODE = "invalid_json"


class ValidationError(ArusApiError):
    CODE = "validation_error"


class UnbalancedEntryError(ArusApiError):
    CODE = "unbalanced_entry"


class InsufficientFundsError(ArusApiError):
    CODE = "insufficient_funds"


class CurrencyMismatchError(ArusApiError):
    CODE = "currency_mismatch"


class IdempotencyKeyRequiredError(ArusApiError):
    CODE = "idempotency_key_required"


class EntryNotPendingError(ArusApiError):
    CODE = "entry_not_pending"


class PendingExpiredError(ArusApiError):
    CODE = "pending_expired"


class EntryNotPostedError(ArusApiError):
    CODE = "entry_not_posted"


class VersionConflictError(ArusApiError):
    """409: a posting's `expected_version` is not its account's version; nothing was written.
    Read the account again, decide again, and post with a new idempotency key."""

    CODE = "version_conflict"


class PeriodClosedError(ArusApiError):
    """The entry is dated into a closed day; `first_open_date` is the day to post it into."""

    CODE = "period_closed"

    @property
    def first_open_date(self) -> str | None:
        value = self.details.get("first_open_date")
        return None if value is None else str(value)


class ServerError(ArusApiError):
    """Any 5xx (after the last retry); the code is the server's, or `http_<status>`."""


class InternalServerError(ServerError):
    CODE = "internal"


class ServiceUnavailableError(ServerError):
    """503: the ledger's database is unreachable or timed out; retried with Retry-After."""

    CODE = "service_unavailable"


ERRORS_BY_CODE: dict[str, type[ArusApiError]] = {
    cls.CODE: cls
    for cls in (
        UnauthenticatedError,
        ForbiddenError,
        NotFoundError,
        MethodNotAllowedError,
        IdempotencyConflictError,
        AlreadyReversedError,
        DuplicateAccountCodeError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        InvalidJsonError,
        ValidationError,
        UnbalancedEntryError,
        InsufficientFundsError,
        CurrencyMismatchError,
        IdempotencyKeyRequiredError,
        EntryNotPendingError,
        PendingExpiredError,
        EntryNotPostedError,
        VersionConflictError,
        PeriodClosedError,
        InternalServerError,
        ServiceUnavailableError,
    )
}


def error_from_response(
    response: httpx.Response, *, idempotency_key: str | None = None
) -> ArusApiError:
    """The exception for an error response, by its code (falling back on the status)."""
    code, message = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    details: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or code)
        message = str(body["error"].get("message") or message)
        details = {k: v for k, v in body["error"].items() if k not in ("code", "message")}
    request_id = next(
        (response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None
    )
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ArusApiError
    return cls(
        status=response.status_code,
        code=code,
        message=message,
        request_id=request_id,
        idempotency_key=idempotency_key,
        details=details,
    )


# --- typed objects --------------------------------------------------------------------------


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


@dataclass(frozen=True)
class Account:
    id: str
    code: str
    name: str
    type: AccountType
    currency: str
    allow_negative: bool
    metadata: dict[str, Any]
    balance: int  # signed in the account's normal direction, minor units (posted only)
    created_at: str
    # Active holds (SPEC §3.2), and the balance less the holds on the side that lowers it.
    pending_debits: int = 0
    pending_credits: int = 0
    available_balance: int = 0
    # 0 at creation, +1 per posted posting applied (SPEC §3.5): pass it as a posting's
    # `expected_version` to post only if the account has not moved since this read.
    version: int = 0
    # True when this object came back from a replayed mutation (Idempotent-Replayed: true).
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, replayed: bool = False) -> Account:
        return cls(
            id=str(body["id"]),
            code=str(body["code"]),
            name=str(body["name"]),
            type=body["type"],
            currency=str(body["currency"]),
            allow_negative=bool(body["allow_negative"]),
            metadata=dict(body.get("metadata") or {}),
            balance=int(body["balance"]),
            created_at=str(body["created_at"]),
            pending_debits=int(body.get("pending_debits", 0)),
            pending_credits=int(body.get("pending_credits", 0)),
            available_balance=int(body.get("available_balance", body["balance"])),
            version=int(body.get("version", 0)),
            replayed=replayed,
        )


@dataclass(frozen=True)
class EntryPosting:
    account_id: str
    account_code: str
    direction: Direction
    amount: int
    currency: str
    # The account's version this posting made; None for a pending entry's lines (they move
    # no balance) and from servers without account versions.
    account_version: int | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> EntryPosting:
        return cls(
            account_id=str(body["account_id"]),
            account_code=str(body["account_code"]),
            direction=body["direction"],
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            account_version=_optional_int(body.get("account_version")),
        )


@dataclass(frozen=True)
class Entry:
    id: str
    ledger_seq: int
    description: str | None
    effective_date: str
    metadata: dict[str, Any]
    postings: tuple[EntryPosting, ...]
    reverses: str | None
    reversed_by: str | None
    created_at: str
    status: EntryStatus = "posted"
    posts: str | None = None  # the pending entry this entry posts
    posted_by: str | None = None  # the entry that posted this pending entry
    expires_at: str | None = None
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, replayed: bool = False) -> Entry:
        return cls(
            id=str(body["id"]),
            ledger_seq=int(body["ledger_seq"]),
            description=_optional_str(body.get("description")),
            effective_date=str(body["effective_date"]),
            metadata=dict(body.get("metadata") or {}),
            postings=tuple(EntryPosting.from_json(p) for p in body["postings"]),
            reverses=_optional_str(body.get("reverses")),
            reversed_by=_optional_str(body.get("reversed_by")),
            created_at=str(body["created_at"]),
            status=body.get("status", "posted"),
            posts=_optional_str(body.get("posts")),
            posted_by=_optional_str(body.get("posted_by")),
            expires_at=_optional_str(body.get("expires_at")),
            replayed=replayed,
        )


@dataclass(frozen=True)
class AccountPosting:
    """One line of `GET /v1/accounts/{ref}/postings`, with the balance right after it."""

    id: int
    entry_id: str
    ledger_seq: int
    direction: Direction
    amount: int
    currency: str
    balance_after: int
    effective_date: str
    created_at: str
    account_version: int | None = None  # the account's version this posting made

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AccountPosting:
        return cls(
            id=int(body["id"]),
            entry_id=str(body["entry_id"]),
            ledger_seq=int(body["ledger_seq"]),
            direction=body["direction"],
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            balance_after=int(body["balance_after"]),
            effective_date=str(body["effective_date"]),
            created_at=str(body["created_at"]),
            account_version=_optional_int(body.get("account_version")),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    data: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class TrialBalanceLine:
    account_id: str
    account_code: str
    name: str
    type: AccountType
    currency: str
    balance: int
    debit: int
    credit: int


@dataclass(frozen=True)
class TrialBalance:
    accounts: list[TrialBalanceLine]
    totals: list[dict[str, Any]]  # [{currency, debit, credit}]
    balanced: bool
    drift: list[dict[str, Any]]  # accounts whose materialized balance != sum of postings

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TrialBalance:
        return cls(
            accounts=[
                TrialBalanceLine(
                    account_id=str(a["account_id"]),
                    account_code=str(a["account_code"]),
                    name=str(a["name"]),
                    type=a["type"],
                    currency=str(a["currency"]),
                    balance=int(a["balance"]),
                    debit=int(a["debit"]),
                    credit=int(a["credit"]),
                )
                for a in body["accounts"]
            ],
            totals=list(body["totals"]),
            balanced=bool(body["balanced"]),
            drift=list(body["drift"]),
        )

    def balance_of(self, code: str) -> int | None:
        """The balance of the account with this code, or None if the ledger has no such account."""
        return next((a.balance for a in self.accounts if a.account_code == code), None)


@dataclass(frozen=True)
class SnapshotBalance:
    account_id: str
    account_code: str
    currency: str
    balance: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SnapshotBalance:
        return cls(str(body["account_id"]), str(body["account_code"]), str(body["currency"]),
                   int(body["balance"]))  # fmt: skip


@dataclass(frozen=True)
class BalancesAt:
    """One page of `GET /v1/balances?at=`: every account's posted balance at that instant."""

    at: str
    data: list[SnapshotBalance]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BalancesAt:
        return cls(
            at=str(body["at"]),
            data=[SnapshotBalance.from_json(b) for b in body["data"]],
            next_cursor=_optional_str(body.get("next_cursor")),
        )  # fmt: skip


@dataclass(frozen=True)
class BatchEntry:
    """One entry of `POST /v1/entries/batch`, with the idempotency key of its own."""

    postings: Sequence[NewPosting]
    idempotency_key: str = field(default_factory=lambda: new_idempotency_key())
    description: str | None = None
    effective_date: dt.date | str | None = None
    metadata: Mapping[str, Any] | None = None
    pending: bool = False
    expires_at: dt.datetime | str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"idempotency_key": self.idempotency_key,
                                "postings": [p.to_json() for p in self.postings]}  # fmt: skip
        if self.pending:
            body["status"] = "pending"
        if self.expires_at is not None:
            body["expires_at"] = _instant(self.expires_at)
        if self.description is not None:
            body["description"] = self.description
        if self.effective_date is not None:
            body["effective_date"] = _date(self.effective_date)
        if self.metadata is not None:
            body["metadata"] = dict(self.metadata)
        return body


@dataclass(frozen=True)
class BatchResult:
    """One entry's answer in a batch: its entry (201, or 200 replayed) or its error."""

    status: int
    entry: Entry | None
    error_code: str | None
    error_message: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BatchResult:
        error = body.get("error")
        replayed = bool(body.get("replayed", False))
        entry = body.get("entry")
        return cls(
            status=int(body["status"]),
            entry=None if entry is None else Entry.from_json(entry, replayed=replayed),
            error_code=None if error is None else str(error["code"]),
            error_message=None if error is None else str(error["message"]),
        )


@dataclass(frozen=True)
class BalanceSnapshot:
    """One page of `GET /v1/balances?as_of=`: balances from that day's close."""

    as_of: str
    closed_at: str
    data: list[SnapshotBalance]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BalanceSnapshot:
        return cls(
            as_of=str(body["as_of"]),
            closed_at=str(body["closed_at"]),
            data=[SnapshotBalance.from_json(b) for b in body["data"]],
            next_cursor=_optional_str(body.get("next_cursor")),
        )


@dataclass(frozen=True)
class RollupTotal:
    currency: str
    debit: int
    credit: int


@dataclass(frozen=True)
class Rollup:
    """`GET /v1/rollups`: the trial-balance columns summed over the codes starting with
    `prefix`, one total per currency (now, at an instant, or as of a closed day)."""

    prefix: str
    accounts: int
    totals: list[RollupTotal]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Rollup:
        return cls(
            prefix=str(body["prefix"]),
            accounts=int(body["accounts"]),
            totals=[
                RollupTotal(str(t["currency"]), int(t["debit"]), int(t["credit"]))
                for t in body["totals"]
            ],
        )


@dataclass(frozen=True)
class Close:
    """`GET /v1/closes/{date}`: a daily close, its books' totals and its journal's seal."""

    close_date: str
    last_ledger_seq: int
    seal: str
    closed_at: str
    accounts: int
    totals: list[RollupTotal]
    balanced: bool

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Close:
        return cls(
            close_date=str(body["close_date"]),
            last_ledger_seq=int(body["last_ledger_seq"]),
            seal=str(body["seal"]),
            closed_at=str(body["closed_at"]),
            accounts=int(body["accounts"]),
            totals=[
                RollupTotal(str(t["currency"]), int(t["debit"]), int(t["credit"]))
                for t in body["totals"]
            ],
            balanced=bool(body["balanced"]),
        )


@dataclass(frozen=True)
class StatementLine:
    entry_id: str
    ledger_seq: int
    effective_date: str
    description: str | None
    direction: Direction
    amount: int
    currency: str
    balance: int  # the running balance after this line

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> StatementLine:
        return cls(
            entry_id=str(body["entry_id"]),
            ledger_seq=int(body["ledger_seq"]),
            effective_date=str(body["effective_date"]),
            description=_optional_str(body.get("description")),
            direction=body["direction"],
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            balance=int(body["balance"]),
        )


@dataclass(frozen=True)
class Statement:
    """One page of `GET /v1/accounts/{ref}/statement`: by effective date, with running
    balances; opening and closing are the same on every page."""

    account_id: str
    from_date: str
    to_date: str
    opening_balance: int
    closing_balance: int
    lines: list[StatementLine]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Statement:
        return cls(
            account_id=str(body["account_id"]),
            from_date=str(body["from"]),
            to_date=str(body["to"]),
            opening_balance=int(body["opening_balance"]),
            closing_balance=int(body["closing_balance"]),
            lines=[StatementLine.from_json(line) for line in body["lines"]],
            next_cursor=_optional_str(body.get("next_cursor")),
        )


@dataclass(frozen=True)
class StatementCsv:
    """One page of a statement as the server's CSV text (a header row, one row per line), with
    what its headers carry."""

    text: str
    opening_balance: int
    closing_balance: int
    next_cursor: str | None


@dataclass(frozen=True)
class NewPosting:
    """One line of a new entry. `amount` is an int of minor units: a float is refused here."""

    account: str  # an account id or code
    direction: Direction
    amount: int
    currency: str | None = None
    # Post only if the account is still at this version (SPEC §3.5); else VersionConflictError.
    expected_version: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(
                f"amount must be an int of minor units (1999 for 19.99), "
                f"not {type(self.amount).__name__} {self.amount!r}"
            )
        if self.direction not in ("debit", "credit"):
            raise ValueError(f"direction must be debit or credit, not {self.direction!r}")
        version = self.expected_version
        if version is None:
            return
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"expected_version must be an int, not {type(version).__name__}")
        if not 0 <= version <= INT64_MAX:
            raise ValueError(f"expected_version must be from 0 to {INT64_MAX}, not {version}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account": self.account,
            "direction": self.direction,
            "amount": self.amount,
        }
        if self.currency is not None:
            body["currency"] = self.currency
        if self.expected_version is not None:
            body["expected_version"] = self.expected_version
        return body


# --- retries --------------------------------------------------------------------------------

# Failures after which the request may or may not have reached the server. Retrying them is
# safe only because every mutation carries an idempotency key that the retry reuses.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,  # connect, read, write and pool timeouts
    httpx.NetworkError,  # connect, read, write and close errors
    httpx.RemoteProtocolError,  # the server dropped the connection mid-response
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter (delay in [0, cap))."""

    max_attempts: int = 4
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts must be within 1..20")
        if not 0 <= self.backoff_base_s <= self.backoff_max_s:
            raise ValueError("backoffs must satisfy 0 <= backoff_base_s <= backoff_max_s")

    def delay_s(self, attempt: int, rng: Callable[[], float]) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return cap * rng()


def _retry_after_s(response: httpx.Response) -> float | None:
    raw = str(response.headers.get("Retry-After", ""))
    return float(raw) if raw.isdigit() else None


def new_idempotency_key() -> str:
    return f"arus-py-{uuid.uuid4().hex}"


def _filters(*, metadata: Mapping[str, str] | None = None, **named: str | None) -> dict[str, str]:
    """Query parameters of the list filters that are set (`metadata.<key>` for each key)."""
    params = {name: value for name, value in named.items() if value is not None}
    params.update({f"metadata.{key}": value for key, value in (metadata or {}).items()})
    return params


def _instant(value: dt.datetime | str) -> str:
    """An RFC 3339 instant; a datetime must carry its time zone."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _date(value: dt.date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else value


# --- the client -----------------------------------------------------------------------------


class ArusClient:
    """A synchronous client for one ledger (the one the API key belongs to)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        # The key's public id (`arus_<id>_<secret>`), to name the key in reports; never the secret.
        self.key_id = api_key.removeprefix("arus_").split("_", 1)[0]
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport with retries --------------------------------------------------------------

    def _request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str | int] | None = None,
        idempotency_key: str | None = None,
        accept: str | None = None,
    ) -> httpx.Response:
        """Send one logical call, retrying transient failures with the same idempotency key."""
        headers: dict[str, str] = {} if accept is None else {"Accept": accept}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        attempts = self.retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except RETRYABLE_ERRORS as exc:
                if attempt == attempts:
                    raise ArusConnectionError(
                        f"{method} {path} failed after {attempt} attempt(s): "
                        f"{type(exc).__name__}: {exc}",
                        attempts=attempt,
                        idempotency_key=idempotency_key,
                        cause=exc,
                    ) from exc
                delay_s = self.retry.delay_s(attempt, self._rng)
                log.warning(
                    "retrying %s %s after %s (attempt %d/%d, in %.3fs)",
                    method, path, type(exc).__name__, attempt, attempts, delay_s,
                )  # fmt: skip
                self._sleep(delay_s)
                continue
            if response.status_code >= 500 and attempt < attempts:
                delay_s = self.retry.delay_s(attempt, self._rng)
                retry_after_s = _retry_after_s(response)
                if retry_after_s is not None:
                    delay_s = min(max(delay_s, retry_after_s), self.retry.backoff_max_s)
                log.warning(
                    "retrying %s %s after HTTP %d (attempt %d/%d, in %.3fs)",
                    method, path, response.status_code, attempt, attempts, delay_s,
                )  # fmt: skip
                self._sleep(delay_s)
                continue
            if response.is_success:
                return response
            raise error_from_response(response, idempotency_key=idempotency_key)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self._request("GET", path, params=params).json()

    @staticmethod
    def _page_params(limit: int | None, cursor: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return params

    @staticmethod
    def _iterate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = fetch(cursor)
            yield from page.data
            cursor = page.next_cursor
            if cursor is None:
                return
            if cursor in seen:
                raise ArusClientError(f"the server repeated the cursor {cursor!r}")
            seen.add(cursor)
        raise ArusClientError(f"a list went on for more than {MAX_PAGES} pages")

    # -- accounts ----------------------------------------------------------------------------

    def create_account(
        self,
        *,
        code: str,
        name: str,
        type: AccountType,
        currency: str,
        allow_negative: bool = False,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Account:
        body: dict[str, Any] = {
            "code": code,
            "name": name,
            "type": type,
            "currency": currency,
            "allow_negative": allow_negative,
        }
        if metadata is not None:
            body["metadata"] = dict(metadata)
        response = self._request(
            "POST",
            "/v1/accounts",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Account.from_json(response.json(), replayed=_replayed(response))

    def get_account(self, ref: str) -> Account:
        """An account by id or code, with its balance."""
        return Account.from_json(self._get_json(f"/v1/accounts/{_segment(ref)}"))

    def list_accounts(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        type: AccountType | None = None,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Page[Account]:
        """Accounts by code; filters combine with AND (`metadata`: each key holds that value)."""
        params = {**self._page_params(limit, cursor),
                  **_filters(type=type, currency=currency, metadata=metadata)}  # fmt: skip
        body = self._get_json("/v1/accounts", params)
        return Page([Account.from_json(a) for a in body["data"]], body.get("next_cursor"))

    def balance_at(self, ref: str, at: dt.datetime | str) -> int:
        """The account's posted balance right after the last posting committed by `at`."""
        body = self._get_json(f"/v1/accounts/{_segment(ref)}/balance", {"at": _instant(at)})
        return int(body["balance"])

    def iter_accounts(self, *, page_size: int = 100) -> Iterator[Account]:
        return self._iterate(lambda cursor: self.list_accounts(limit=page_size, cursor=cursor))

    def account_postings(
        self, ref: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[AccountPosting]:
        """An account's postings, newest first, each with the balance right after it."""
        body = self._get_json(
            f"/v1/accounts/{_segment(ref)}/postings", self._page_params(limit, cursor)
        )
        return Page([AccountPosting.from_json(p) for p in body["data"]], body.get("next_cursor"))

    def iter_postings(self, ref: str, *, page_size: int = 100) -> Iterator[AccountPosting]:
        return self._iterate(
            lambda cursor: self.account_postings(ref, limit=page_size, cursor=cursor)
        )

    # -- entries -----------------------------------------------------------------------------

    def post_entry(
        self,
        postings: Sequence[NewPosting],
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
        effective_date: dt.date | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        pending: bool = False,
        expires_at: dt.datetime | str | None = None,
    ) -> Entry:
        """Post a balanced entry. Pass your own idempotency key to make the call safe to repeat
        across processes (a retry inside this call always reuses the key, given or generated).
        `pending=True` reserves the funds instead (a hold, SPEC §3.2): post it or void it later;
        with `expires_at` it stops holding them at that instant."""
        body: dict[str, Any] = {"postings": [p.to_json() for p in postings]}
        if pending:
            body["status"] = "pending"
        if expires_at is not None:
            body["expires_at"] = _instant(expires_at)
        if description is not None:
            body["description"] = description
        if effective_date is not None:
            body["effective_date"] = _date(effective_date)
        if metadata is not None:
            body["metadata"] = dict(metadata)
        response = self._request(
            "POST",
            "/v1/entries",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Entry.from_json(response.json(), replayed=_replayed(response))

    def post_batch(
        self, entries: Sequence[BatchEntry], *, atomic: bool = False
    ) -> list[BatchResult]:
        """Post up to 1,000 entries in one transaction, judged in order (SPEC §3.1): one result
        per entry. With `atomic=True` it is all or nothing: the first failing entry's error is
        raised (its `index` in the error's details). Each entry keeps its own idempotency key,
        so a retry of the whole call replays what was written."""
        body = {"entries": [e.to_json() for e in entries], "atomic": atomic}
        response = self._request("POST", "/v1/entries/batch", body=body)
        return [BatchResult.from_json(r) for r in response.json()["results"]]

    def reverse_entry(
        self,
        entry_id: str,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
        effective_date: dt.date | str | None = None,
    ) -> Entry:
        """Post the mirror of an entry; returns the reversal (its `reverses` is entry_id)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if effective_date is not None:
            body["effective_date"] = _date(effective_date)
        response = self._request(
            "POST",
            f"/v1/entries/{_segment(entry_id)}/reverse",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Entry.from_json(response.json(), replayed=_replayed(response))

    def post_pending(
        self,
        entry_id: str,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> Entry:
        """Capture a hold: returns the new posted entry (its `posts` is entry_id)."""
        body: dict[str, Any] = {} if description is None else {"description": description}
        response = self._request(
            "POST",
            f"/v1/entries/{_segment(entry_id)}/post",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Entry.from_json(response.json(), replayed=_replayed(response))

    def void_pending(self, entry_id: str, *, idempotency_key: str | None = None) -> Entry:
        """Release a hold: returns the pending entry, now `voided`."""
        response = self._request(
            "POST",
            f"/v1/entries/{_segment(entry_id)}/void",
            body={},
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Entry.from_json(response.json(), replayed=_replayed(response))

    def get_entry(self, entry_id: str) -> Entry:
        return Entry.from_json(self._get_json(f"/v1/entries/{_segment(entry_id)}"))

    def list_entries(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        account: str | None = None,
        effective_from: dt.date | str | None = None,
        effective_to: dt.date | str | None = None,
        status: EntryStatus | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Page[Entry]:
        """Entries, newest (highest ledger_seq) first; filters combine with AND."""
        params = {**self._page_params(limit, cursor),
                  **_filters(account=account, effective_from=_date(effective_from),
                             effective_to=_date(effective_to), status=status,
                             metadata=metadata)}  # fmt: skip
        body = self._get_json("/v1/entries", params)
        return Page([Entry.from_json(e) for e in body["data"]], body.get("next_cursor"))

    def iter_entries(self, *, page_size: int = 100) -> Iterator[Entry]:
        return self._iterate(lambda cursor: self.list_entries(limit=page_size, cursor=cursor))

    # -- balances ----------------------------------------------------------------------------

    def trial_balance(self) -> TrialBalance:
        """Every account's balance in one snapshot, totals per currency, balanced and drift."""
        return TrialBalance.from_json(self._get_json("/v1/trial-balance"))

    def balances_as_of(
        self, as_of: dt.date | str, *, limit: int | None = None, cursor: str | None = None
    ) -> BalanceSnapshot:
        """One page of the balances from the daily close of `as_of` (404 if not closed)."""
        params = self._page_params(limit, cursor)
        params["as_of"] = _date(as_of) or ""
        return BalanceSnapshot.from_json(self._get_json("/v1/balances", params))

    def iter_balances_as_of(
        self, as_of: dt.date | str, *, page_size: int = 100
    ) -> Iterator[SnapshotBalance]:
        def fetch(cursor: str | None) -> Page[SnapshotBalance]:
            page = self.balances_as_of(as_of, limit=page_size, cursor=cursor)
            return Page(page.data, page.next_cursor)

        return self._iterate(fetch)

    def balances_at(
        self, at: dt.datetime | str, *, limit: int | None = None, cursor: str | None = None
    ) -> BalancesAt:
        """One page of every account's posted balance at the instant `at`, by account code."""
        params = self._page_params(limit, cursor)
        params["at"] = _instant(at)
        return BalancesAt.from_json(self._get_json("/v1/balances", params))

    def get_close(self, day: dt.date | str) -> Close:
        """One daily close with its seal (404 if the day is not closed)."""
        return Close.from_json(self._get_json(f"/v1/closes/{_date(day)}", {}))

    def list_closes(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Close]:
        """The ledger's daily closes, the latest first."""
        body = self._get_json("/v1/closes", self._page_params(limit, cursor))
        return Page([Close.from_json(c) for c in body["data"]], body.get("next_cursor"))

    def rollup(
        self,
        prefix: str,
        *,
        at: dt.datetime | str | None = None,
        as_of: dt.date | str | None = None,
    ) -> Rollup:
        """The trial-balance columns summed per currency over the accounts whose code starts
        with `prefix` (literally: `wallet:` covers `wallet:ana`): now, at the instant `at`, or
        from the daily close of `as_of` (404 if not closed). Not both."""
        params: dict[str, str | int] = {"prefix": prefix}
        if at is not None:
            params["at"] = _instant(at)
        if as_of is not None:
            params["as_of"] = _date(as_of) or ""
        return Rollup.from_json(self._get_json("/v1/rollups", params))

    # -- statements --------------------------------------------------------------------------

    @staticmethod
    def _statement_params(
        from_date: dt.date | str, to_date: dt.date | str, limit: int | None, cursor: str | None
    ) -> dict[str, str | int]:
        return {"from": _date(from_date) or "", "to": _date(to_date) or "",
                **ArusClient._page_params(limit, cursor)}  # fmt: skip

    def statement(
        self,
        ref: str,
        from_date: dt.date | str,
        to_date: dt.date | str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Statement:
        """One page of the account's statement: postings of entries dated from..to (at most
        366 days) by effective date, each with the running balance."""
        return Statement.from_json(self._get_json(
            f"/v1/accounts/{_segment(ref)}/statement",
            self._statement_params(from_date, to_date, limit, cursor),
        ))  # fmt: skip

    def iter_statement_lines(
        self, ref: str, from_date: dt.date | str, to_date: dt.date | str, *, page_size: int = 100
    ) -> Iterator[StatementLine]:
        def fetch(cursor: str | None) -> Page[StatementLine]:
            page = self.statement(ref, from_date, to_date, limit=page_size, cursor=cursor)
            return Page(page.lines, page.next_cursor)

        return self._iterate(fetch)

    def statement_csv(
        self,
        ref: str,
        from_date: dt.date | str,
        to_date: dt.date | str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> StatementCsv:
        """One page of the statement as CSV; the next page's cursor is `next_cursor`."""
        response = self._request(
            "GET",
            f"/v1/accounts/{_segment(ref)}/statement",
            params=self._statement_params(from_date, to_date, limit, cursor),
            accept="text/csv",
        )
        return StatementCsv(
            text=response.text,
            opening_balance=int(response.headers["X-Opening-Balance"]),
            closing_balance=int(response.headers["X-Closing-Balance"]),
            next_cursor=response.headers.get("X-Next-Cursor"),
        )


def _segment(value: str) -> str:
    """A path segment: ids and codes are percent-encoded so no code can change the route."""
    return quote(value, safe="")


def _replayed(response: httpx.Response) -> bool:
    return str(response.headers.get("Idempotent-Replayed", "")).lower() == "true"
