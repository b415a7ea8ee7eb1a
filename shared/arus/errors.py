"""Domain errors: one exception type per API error code (SPEC §3), mapped to HTTP in arus.web."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa

from arus.rules import ERROR_STATUS


class ArusError(Exception):
    """Base of every error the API reports; `code` and `status` are the wire contract."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(
        self, message: str, *, index: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.index = index  # the failing item of an atomic batch
        self.details = details or {}  # fields a client acts on (period_closed: first_open_date)

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.details}
        if self.index is not None:
            error["index"] = self.index
        return {"error": error}


class Unauthenticated(ArusError):
    code, status = "unauthenticated", 401


class Forbidden(ArusError):
    code, status = "forbidden", 403


class NotFound(ArusError):
    code, status = "not_found", 404


class MethodNotAllowed(ArusError):
    code, status = "method_not_allowed", 405


class IdempotencyConflict(ArusError):
    code, status = "idempotency_conflict", 409


class AlreadyReversed(ArusError):
    code, status = "already_reversed", 409


class DuplicateAccountCode(ArusError):
    code, status = "duplicate_account_code", 409


class InvalidJson(ArusError):
    code, status = "invalid_json", 400


class PayloadTooLarge(ArusError):
    code, status = "payload_too_large", 413


class UnsupportedMediaType(ArusError):
    code, status = "unsupported_media_type", 415


class ValidationError(ArusError):
    code, status = "validation_error", 422


class UnbalancedEntry(ArusError):
    code, status = "unbalanced_entry", 422


class InsufficientFunds(ArusError):
    code, status = "insufficient_funds", 422


class CurrencyMismatch(ArusError):
    code, status = "currency_mismatch", 422


class IdempotencyKeyRequired(ArusError):
    code, status = "idempotency_key_required", 422


class EntryNotPending(ArusError):
    code, status = "entry_not_pending", 409


class PendingExpired(ArusError):
    code, status = "pending_expired", 409


class EntryNotPosted(ArusError):
    code, status = "entry_not_posted", 409


class VersionConflict(ArusError):
    """A posting line's expected_version is not its account's version (SPEC §3.5)."""

    code, status = "version_conflict", 409


class PeriodClosed(ArusError):
    code, status = "period_closed", 422


class ServiceUnavailable(ArusError):
    """The database is unreachable, or cancelled the work (a timeout): retry after a moment."""

    code, status = "service_unavailable", 503
    retry_after_s: ClassVar[int] = 1


# Codes the engine or the commands raise, by code; `method_not_allowed` and `internal` are
# answered by the web layer only.
BY_CODE: dict[str, type[ArusError]] = {
    cls.code: cls
    for cls in (
        Unauthenticated,
        Forbidden,
        NotFound,
        IdempotencyConflict,
        AlreadyReversed,
        DuplicateAccountCode,
        InvalidJson,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationError,
        UnbalancedEntry,
        InsufficientFunds,
        CurrencyMismatch,
        IdempotencyKeyRequired,
        EntryNotPending,
        PendingExpired,
        EntryNotPosted,
        VersionConflict,
        PeriodClosed,
        ServiceUnavailable,
    )
}

assert all(ERROR_STATUS[code] == cls.status for code, cls in BY_CODE.items())
assert ERROR_STATUS[MethodNotAllowed.code] == MethodNotAllowed.status == 405

# Constraint names whose violation is a domain outcome, not a bug (races the functions'
# own checks cannot see: they are decided by the unique index or CHECK at write time).
_CONSTRAINTS: dict[str, type[ArusError]] = {
    "entries_reverses_key": AlreadyReversed,
    "accounts_ledger_code_key": DuplicateAccountCode,
    "balances_non_negative": InsufficientFunds,
}


def refusal(reason: str, message: str | None = None) -> dict[str, Any]:
    """The body of a refusal that has no error type of its own (a malformed request line,
    headers too large): its code is the HTTP reason phrase in snake case."""
    return {"error": {"code": reason.lower().replace(" ", "_"), "message": message or reason}}


def from_database(orig: BaseException) -> ArusError | None:
    """The domain error a pg8000 DatabaseError stands for, or None if it is a real fault.

    The ledger's SQL functions raise with the API code in HINT; constraint violations that
    only a concurrent writer can cause are mapped by constraint name.
    """
    fields = _fields(orig)
    hint, message = fields.get("H"), fields.get("M", "")
    if fields.get("C") == "P0001" and hint in BY_CODE:
        # DETAIL carries `name=value` pairs: a batch item's index, fields for the client.
        detail = dict(re.findall(r"(\w+)=(\S+)", fields.get("D", "")))
        index = detail.pop("index", None)
        return BY_CODE[hint](message, index=None if index is None else int(index), details=detail)
    constraint = fields.get("n")
    if constraint in _CONSTRAINTS:
        cls = _CONSTRAINTS[constraint]
        return cls(
            {
                AlreadyReversed: "the entry is already reversed",
                DuplicateAccountCode: "an account with this code already exists",
                InsufficientFunds: "an account would go below zero",
            }[cls]
        )
    return None


# SQLSTATEs that mean "not now" rather than "wrong": the server cancelled a statement
# (statement_timeout), gave up waiting for a lock (lock_timeout), ended an idle transaction,
# is shutting down or starting, or has no connection slot left, or the engine asks for the call
# again (40001: the day an entry is dated ended while it was written); class 08 is the
# connection.
RETRY_STATE = "40001"
_UNAVAILABLE_STATES = frozenset(
    {"57014", "55P03", "25P03", "57P01", "57P02", "57P03", "53300", RETRY_STATE}
)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a database failure stands for, or None if it is not one (a bug stays a 500)."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return ServiceUnavailable("the ledger is busy; retry shortly")
    if isinstance(exc, ConnectionError):
        # The driver's socket failed outside the DB-API's error types (reset by a server that
        # died mid-answer); the connection is discarded (platform.db), the request may retry.
        return ServiceUnavailable("the ledger database connection was lost; retry shortly")
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    if isinstance(exc, sa.exc.InterfaceError) or exc.connection_invalidated:
        return ServiceUnavailable("the ledger database cannot be reached; retry shortly")
    state = sqlstate(exc)
    if state in _UNAVAILABLE_STATES or state.startswith("08"):
        return ServiceUnavailable("the ledger database did not answer in time; retry shortly")
    if isinstance(exc, sa.exc.OperationalError) and not state:
        return ServiceUnavailable("the ledger database cannot be reached; retry shortly")
    return None


def _fields(orig: BaseException | None) -> dict[str, Any]:
    """pg8000's error fields (C: SQLSTATE, M: message, H: hint, D: detail, n: constraint)."""
    args = orig.args if orig is not None else ()
    return args[0] if args and isinstance(args[0], dict) else {}


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a database error ('' if none): safe to log, it carries no values."""
    return str(_fields(getattr(exc, "orig", None)).get("C", ""))


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a database error that stands for a domain outcome into that domain error."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        domain = from_database(exc.orig) if exc.orig is not None else None
        if domain is None:
            raise
        raise domain from None
