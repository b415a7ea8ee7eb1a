"""The ledger's rules, each stated once: account types and their normal sides, limits, int64
bounds and the API's error codes (SPEC §2, §3).

Python reads them from here. The SQL engine (`ledger/sql/*.sql`) and the table constraints restate
some of them in SQL, and the consumer side (`arus-client`) restates the wire contract it needs;
`tests/unit/test_rules_parity.py` reads all of those and fails when any of them drifts from
this file.
"""

from __future__ import annotations

from typing import Literal

AccountType = Literal["asset", "expense", "liability", "equity", "revenue"]
Direction = Literal["debit", "credit"]
EntryStatus = Literal["posted", "pending", "voided", "expired"]

ACCOUNT_TYPES: tuple[AccountType, ...] = ("asset", "expense", "liability", "equity", "revenue")
DIRECTIONS: tuple[Direction, ...] = ("debit", "credit")
ENTRY_STATUSES: tuple[EntryStatus, ...] = ("posted", "pending", "voided", "expired")
# An account's balance grows on its normal side: debit for these types, credit for the others.
DEBIT_NORMAL_TYPES: frozenset[AccountType] = frozenset({"asset", "expense"})


def normal_side(account_type: AccountType) -> Direction:
    return "debit" if account_type in DEBIT_NORMAL_TYPES else "credit"


# Money: integer minor units that fit PostgreSQL's bigint, amounts and every balance alike.
INT64_MIN, INT64_MAX = -9_223_372_036_854_775_808, 9_223_372_036_854_775_807

# Limits on everything a request can carry.
MIN_POSTINGS, MAX_POSTINGS = 2, 100  # per entry
MAX_BATCH_ITEMS = 1000  # entries per batch
MAX_BATCH_POSTINGS = 10_000  # postings per batch, all entries together
MAX_DESCRIPTION_CHARS = 1000
MAX_NAME_CHARS = 200
MAX_METADATA_BYTES = 8 * 1024
MAX_IDEMPOTENCY_KEY_CHARS = 255
ACCOUNT_CODE_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
MAX_EFFECTIVE_DAYS_AHEAD = 366  # an entry's effective_date, from today (UTC)
MAX_HOLD_DAYS = 90  # a pending entry's expires_at, from now
MIN_RETENTION_DAYS = 7  # idempotency claims and published events are kept at least this long

# The API's error codes and their HTTP statuses (SPEC §3): the wire contract.
ERROR_STATUS: dict[str, int] = {
    "invalid_json": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "idempotency_conflict": 409,
    "already_reversed": 409,
    "duplicate_account_code": 409,
    "entry_not_pending": 409,
    "pending_expired": 409,
    "entry_not_posted": 409,
    "version_conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "unbalanced_entry": 422,
    "insufficient_funds": 422,
    "currency_mismatch": 422,
    "idempotency_key_required": 422,
    "period_closed": 422,
    "internal": 500,
    "service_unavailable": 503,
}
# HINTs the engine raises that are guards, never an answer: the append-only triggers fire only
# if code other than the engine writes to the journal, which is a bug (a 500, logged).
GUARD_HINTS = frozenset({"append_only"})
