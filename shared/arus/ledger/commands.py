"""Commands: request bodies parsed and validated into small typed values (SPEC §2, §3).

Everything that can be checked without the database is checked here, with the field's path in
the message; what needs the ledger's state (accounts, balances, reversals) is the engine's job.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arus.errors import ArusError, IdempotencyKeyRequired, ValidationError
from arus.ledger.money import parse_amount_minor, parse_currency
from arus.rules import (
    ACCOUNT_CODE_PATTERN,
    ACCOUNT_TYPES,
    DIRECTIONS,
    INT64_MAX,
    MAX_BATCH_ITEMS,
    MAX_BATCH_POSTINGS,
    MAX_DESCRIPTION_CHARS,
    MAX_EFFECTIVE_DAYS_AHEAD,
    MAX_HOLD_DAYS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_METADATA_BYTES,
    MAX_NAME_CHARS,
    MAX_POSTINGS,
    MIN_POSTINGS,
    AccountType,
    Direction,
)

_CODE = re.compile(ACCOUNT_CODE_PATTERN)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class AccountRef:
    """An account named by id or by code; UUID-shaped references are ids (codes cannot be)."""

    account_id: uuid.UUID | None = None
    code: str | None = None

    def as_json(self) -> dict[str, str]:
        if self.account_id is not None:
            return {"account_id": str(self.account_id)}
        assert self.code is not None
        return {"account_code": self.code}


@dataclass(frozen=True)
class NewAccount:
    code: str
    name: str
    type: AccountType
    currency: str
    allow_negative: bool
    metadata: dict[str, Any]


@dataclass(frozen=True)
class PostingLine:
    account: AccountRef
    direction: Direction
    amount_minor: int
    currency: str | None
    # Optimistic concurrency (SPEC §3.5): the account's version the caller last read; the
    # engine refuses the entry (409 version_conflict) when the account has moved on since.
    expected_version: int | None = None


@dataclass(frozen=True)
class NewEntry:
    description: str | None
    effective_date: dt.date
    metadata: dict[str, Any]
    postings: tuple[PostingLine, ...]
    pending: bool = False  # a hold: reserves the funds, moves no balance (SPEC §3.2)
    expires_at: dt.datetime | None = None  # a hold stops holding at this instant (UTC)


@dataclass(frozen=True)
class PendingAction:
    """Post or void a pending entry."""

    entry_id: uuid.UUID
    description: str | None = None


@dataclass(frozen=True)
class Reversal:
    entry_id: uuid.UUID
    description: str | None
    effective_date: dt.date


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_account_ref(value: object, *, field: str) -> AccountRef:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an account id or code")
    if _UUID.fullmatch(value):
        return AccountRef(account_id=uuid.UUID(value))
    if not _CODE.fullmatch(value):
        raise ValidationError(f"{field} must be an account id or code")
    return AccountRef(code=value)


def parse_object_id(value: str) -> uuid.UUID | None:
    """A path id, or None when it cannot name any object (the caller answers 404)."""
    return uuid.UUID(value) if _UUID.fullmatch(value) else None


# What a JSON value is, as a message names it (a JSON body's values have exactly these types).
_JSON_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "an array",
               dict: "an object"}  # fmt: skip


def parse_idempotency_key(value: object, *, field: str = "the Idempotency-Key header") -> str:
    """A request's idempotency key: the header's text, or a batch item's `idempotency_key`,
    which may be any JSON value (what is not a string is refused, never coerced)."""
    if value is None or value == "":
        raise IdempotencyKeyRequired(f"{field} is required on this request")
    if not isinstance(value, str):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise ValidationError(f"{field} must be a string, not {kind}")
    if len(value) > MAX_IDEMPOTENCY_KEY_CHARS or not _PRINTABLE_ASCII.fullmatch(value):
        raise ValidationError(
            f"{field} must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
        )
    return value


def _object(
    body: object, *, allowed: frozenset[str], required: frozenset[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise ValidationError(f"missing required field(s): {', '.join(missing)}")
    return body


def _text(value: object, *, field: str, max_chars: int, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"{field} must be a non-empty string")
    if len(value) > max_chars:
        raise ValidationError(f"{field} must be at most {max_chars} characters")
    return value


def _metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(value: object, *, field: str) -> dt.date:
    """A calendar date written exactly as YYYY-MM-DD (ASCII digits; no week dates, no compact
    forms): the one date format of the API, in bodies and in query strings."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValidationError(f"{field} must be a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field} is not a real date: {value}") from None


def parse_as_of(raw: object, *, field: str = "as_of") -> dt.date:
    """A day to close or to read the snapshot of (a day after it must exist)."""
    day = parse_date(raw, field=field)
    if day >= dt.date.max:
        raise ValidationError(f"{field} is out of range")
    return day


def _date(value: object, *, field: str) -> dt.date:
    return today_utc() if value is None else parse_date(value, field=field)


def _effective_date(value: object) -> dt.date:
    day = _date(value, field="effective_date")
    if day > today_utc() + dt.timedelta(days=MAX_EFFECTIVE_DAYS_AHEAD):
        raise ValidationError(
            f"effective_date may be at most {MAX_EFFECTIVE_DAYS_AHEAD} days ahead"
        )
    return day


# RFC 3339 date-time: the T (or t, or a space) and an explicit offset are required.
_RFC3339 = re.compile(
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_instant(value: object, *, field: str) -> dt.datetime:
    """An RFC 3339 instant with its offset (`2026-12-01T10:00:00Z`), in UTC, to microseconds
    (the ledger's precision: further digits are dropped)."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(f"{field} must be an RFC 3339 date-time with an offset")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        instant = dt.datetime.fromisoformat(f"{match['day']}T{match['time']}.{fraction}{offset}")
        return instant.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field} is not a real date-time: {value}") from None


def parse_expected_version(value: object, *, field: str) -> int | None:
    """A posting line's `expected_version`: a JSON integer 0..INT64_MAX (an account's version
    is a bigint counter from 0). `null` is the same as leaving it out: nothing is compared.
    Booleans, floats (even 1.0) and strings are refused, never coerced."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a string" if isinstance(value, str) else _JSON_KINDS.get(type(value), "a number")
        raise ValidationError(f"{field} must be an integer >= 0, not {kind}")
    if not 0 <= value <= INT64_MAX:
        raise ValidationError(f"{field} must be an integer >= 0 and at most {INT64_MAX}")
    return value


def _expires_at(value: object) -> dt.datetime:
    # "In the future" is the engine's to judge, for new entries only: a retry of a hold whose
    # instant has passed must still replay its stored response, not fail here.
    instant = parse_instant(value, field="expires_at")
    now = dt.datetime.now(dt.UTC)
    if instant > now + dt.timedelta(days=MAX_HOLD_DAYS):
        raise ValidationError(f"expires_at may be at most {MAX_HOLD_DAYS} days ahead")
    return instant


def parse_new_account(body: object) -> NewAccount:
    data = _object(
        body,
        allowed=frozenset({"code", "name", "type", "currency", "allow_negative", "metadata"}),
        required=frozenset({"code", "name", "type", "currency"}),
    )
    code = data["code"]
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValidationError("code must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    if _UUID.fullmatch(code):
        raise ValidationError("code must not look like an account id (a UUID)")
    account_type = data["type"]
    if account_type not in ACCOUNT_TYPES:
        raise ValidationError(f"type must be one of {', '.join(ACCOUNT_TYPES)}")
    allow_negative = data.get("allow_negative", False)
    if not isinstance(allow_negative, bool):
        raise ValidationError("allow_negative must be true or false")
    name = _text(data["name"], field="name", max_chars=MAX_NAME_CHARS, required=True)
    assert name is not None
    return NewAccount(
        code=code,
        name=name,
        type=account_type,
        currency=parse_currency(data["currency"], field="currency"),
        allow_negative=allow_negative,
        metadata=_metadata(data.get("metadata")),
    )


def parse_new_entry(body: object) -> NewEntry:
    data = _object(
        body,
        allowed=frozenset(
            {"description", "effective_date", "metadata", "postings", "status", "expires_at"}
        ),
        required=frozenset({"postings"}),
    )
    status = data.get("status", "posted")
    if status not in ("posted", "pending"):
        raise ValidationError('status must be "posted" or "pending"')
    if "expires_at" in data and status != "pending":
        raise ValidationError('expires_at is for pending entries ("status": "pending")')
    raw_postings = data["postings"]
    if not isinstance(raw_postings, list):
        raise ValidationError("postings must be a list")
    if not MIN_POSTINGS <= len(raw_postings) <= MAX_POSTINGS:
        raise ValidationError(f"an entry has {MIN_POSTINGS} to {MAX_POSTINGS} postings")
    lines = []
    for index, raw in enumerate(raw_postings):
        field = f"postings[{index}]"
        posting = _object(
            raw,
            allowed=frozenset({"account", "direction", "amount", "currency", "expected_version"}),
            required=frozenset({"account", "direction", "amount"}),
        )
        direction = posting["direction"]
        if direction not in DIRECTIONS:
            raise ValidationError(f"{field}.direction must be debit or credit")
        currency = posting.get("currency")
        lines.append(
            PostingLine(
                account=parse_account_ref(posting["account"], field=f"{field}.account"),
                direction=direction,
                amount_minor=parse_amount_minor(posting["amount"], field=f"{field}.amount"),
                currency=None
                if currency is None
                else parse_currency(currency, field=f"{field}.currency"),
                expected_version=parse_expected_version(
                    posting.get("expected_version"), field=f"{field}.expected_version"
                ),
            )
        )
    return NewEntry(
        description=_text(
            data.get("description"),
            field="description",
            max_chars=MAX_DESCRIPTION_CHARS,
            required=False,
        ),
        effective_date=_effective_date(data.get("effective_date")),
        metadata=_metadata(data.get("metadata")),
        postings=tuple(lines),
        pending=status == "pending",
        expires_at=None if data.get("expires_at") is None else _expires_at(data["expires_at"]),
    )


def parse_reversal(entry_id: uuid.UUID, body: object) -> Reversal:
    data = _object(body, allowed=frozenset({"description", "effective_date"}))
    return Reversal(
        entry_id=entry_id,
        description=_text(
            data.get("description"),
            field="description",
            max_chars=MAX_DESCRIPTION_CHARS,
            required=False,
        ),
        effective_date=_effective_date(data.get("effective_date")),
    )


def parse_post_pending(entry_id: uuid.UUID, body: object) -> PendingAction:
    """`POST /v1/entries/{id}/post` with `{description?}`."""
    data = _object(body, allowed=frozenset({"description"}))
    description = _text(
        data.get("description"), field="description", max_chars=MAX_DESCRIPTION_CHARS,
        required=False,
    )  # fmt: skip
    return PendingAction(entry_id=entry_id, description=description)


def parse_void_pending(entry_id: uuid.UUID, body: object) -> PendingAction:
    """`POST /v1/entries/{id}/void`: no body, or an empty object."""
    _object(body, allowed=frozenset())
    return PendingAction(entry_id=entry_id)


@dataclass(frozen=True)
class BatchItem:
    idempotency_key: str
    entry: NewEntry
    request_body: dict[str, Any]  # the item without its key: what a single POST would carry


@dataclass(frozen=True)
class NewBatch:
    # Each item parsed, or the error it fails with: an invalid item fails alone (or, in an
    # atomic batch, fails the batch at its index), exactly as it would as a single POST.
    items: tuple[BatchItem | ArusError, ...]
    atomic: bool


def parse_batch(body: object) -> NewBatch:
    """`{"entries": [item, ...], "atomic": false}` (SPEC §3.1): each item is the body of
    POST /v1/entries plus its `idempotency_key`, held to exactly the single-entry rules.
    What makes the request no batch at all (not an object, `entries` missing, empty or too
    long, too many postings, a key used twice) is a ValidationError for the whole request."""
    data = _object(body, allowed=frozenset({"entries", "atomic"}), required=frozenset({"entries"}))
    atomic = data.get("atomic", False)
    if not isinstance(atomic, bool):
        raise ValidationError("atomic must be true or false")
    raw_items = data["entries"]
    if not isinstance(raw_items, list) or not 1 <= len(raw_items) <= MAX_BATCH_ITEMS:
        raise ValidationError(f"entries must be a list of 1 to {MAX_BATCH_ITEMS} entries")
    items: list[BatchItem | ArusError] = []
    seen: set[str] = set()
    postings = 0
    for index, raw in enumerate(raw_items):
        if isinstance(raw, dict) and isinstance(raw.get("postings"), list):
            postings += len(raw["postings"])
        if postings > MAX_BATCH_POSTINGS:
            raise ValidationError(f"a batch has at most {MAX_BATCH_POSTINGS} postings in all")
        key = raw.get("idempotency_key") if isinstance(raw, dict) else None
        if isinstance(key, str) and key in seen:
            raise ValidationError(f"entries[{index}].idempotency_key is used twice in this batch")
        if isinstance(key, str):
            seen.add(key)
        try:
            if not isinstance(raw, dict):
                raise ValidationError("the entry must be a JSON object")
            request_body = {k: v for k, v in raw.items() if k != "idempotency_key"}
            item = BatchItem(
                idempotency_key=parse_idempotency_key(key, field="idempotency_key"),
                entry=parse_new_entry(request_body),
                request_body=request_body,
            )
        except ArusError as exc:
            items.append(type(exc)(f"entries[{index}]: {exc.message}", index=index))
            continue
        items.append(item)
    return NewBatch(items=tuple(items), atomic=atomic)


# --- list filters (SPEC §3): query parameters → typed filters ------------------------------

ENTRY_STATUSES = ("posted", "pending", "voided", "expired")
MAX_METADATA_FILTERS = 10
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_PAGING = frozenset({"limit", "cursor"})


@dataclass(frozen=True)
class EntryFilters:
    account: AccountRef | None = None
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None
    status: str | None = None
    metadata: dict[str, str] | None = None  # every key must hold exactly this string


@dataclass(frozen=True)
class AccountFilters:
    type: AccountType | None = None
    currency: str | None = None
    metadata: dict[str, str] | None = None


def _query_args(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    args: dict[str, str] = {}
    for name, value in pairs:
        if name in args:
            raise ValidationError(f"query parameter {name} is given twice")
        args[name] = value
    return args


def _filters(args: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str] | None:
    """Check the query's names; return its `metadata.<key>` filters (None when there are none)."""
    metadata: dict[str, str] = {}
    for name, value in args.items():
        if name.startswith("metadata."):
            key = name.removeprefix("metadata.")
            if not _METADATA_KEY.fullmatch(key):
                raise ValidationError(f"{name}: a metadata key is 1-64 of A-Za-z0-9_.:-")
            metadata[key] = value
        elif name not in allowed | _PAGING:
            known = ", ".join(sorted(allowed | {"metadata.<key>"}))
            raise ValidationError(f"unknown query parameter {name}; filters are {known}")
    if len(metadata) > MAX_METADATA_FILTERS:
        raise ValidationError(f"at most {MAX_METADATA_FILTERS} metadata filters")
    return metadata or None


def parse_entry_filters(pairs: Sequence[tuple[str, str]]) -> EntryFilters:
    """`GET /v1/entries?account=&effective_from=&effective_to=&status=&metadata.<key>=`."""
    args = _query_args(pairs)
    metadata = _filters(args, frozenset({"account", "effective_from", "effective_to", "status"}))
    status = args.get("status")
    if status is not None and status not in ENTRY_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    start = None if "effective_from" not in args else parse_date(
        args["effective_from"], field="effective_from")  # fmt: skip
    end = None if "effective_to" not in args else parse_date(
        args["effective_to"], field="effective_to")  # fmt: skip
    if start is not None and end is not None and start > end:
        raise ValidationError("effective_from is after effective_to")
    account = None if "account" not in args else parse_account_ref(
        args["account"], field="account")  # fmt: skip
    return EntryFilters(account, start, end, status, metadata)


def parse_account_filters(pairs: Sequence[tuple[str, str]]) -> AccountFilters:
    """`GET /v1/accounts?type=&currency=&metadata.<key>=`."""
    args = _query_args(pairs)
    metadata = _filters(args, frozenset({"type", "currency"}))
    type_ = args.get("type")
    if type_ is not None and type_ not in ACCOUNT_TYPES:
        raise ValidationError(f"type must be one of {', '.join(ACCOUNT_TYPES)}")
    currency = args.get("currency")
    if currency is not None:
        currency = parse_currency(currency, field="currency")
    return AccountFilters(type_, currency, metadata)
