"""Commands: request bodies validated into typed values (SPEC §2, §3).

Each body is a model (`NewAccount`, `NewEntry`, ...): its field types carry the rules, the same
types write the body's schema in the OpenAPI document (`web/openapi.py`), and a refusal names the
field's path (`postings[1].amount must be ...`). Everything that can be checked without the
database is checked here; what needs the ledger's state (accounts, balances, reversals) is the
engine's job. Bodies arrive already parsed by the strict JSON layer (`web/bodies.py`), which
refuses duplicate keys and NUL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema, model_validator

from arus.errors import ArusError, IdempotencyKeyRequired, ValidationError
from arus.ledger.fields import Body, check, refuse, says, validated
from arus.ledger.money import Amount, Currency, parse_currency
from arus.rules import (
    ACCOUNT_CODE_PATTERN,
    ACCOUNT_TYPES,
    ENTRY_STATUSES,
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
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 date-time: the T (or t, or a space) and an explicit offset are required.
_RFC3339 = re.compile(
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
DATE_SCHEMA = {"type": "string", "format": "date"}
INSTANT_SCHEMA = {"type": "string", "format": "date-time"}


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# --- values: each checks one JSON value and refuses it in the ledger's words ----------------


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


def _account_ref(value: object) -> AccountRef:
    if isinstance(value, str) and _UUID.fullmatch(value):
        return AccountRef(account_id=uuid.UUID(value))
    if isinstance(value, str) and _CODE.fullmatch(value):
        return AccountRef(code=value)
    refuse("must be an account id or code")


def _calendar_date(value: object) -> dt.date:
    """A calendar date written exactly as YYYY-MM-DD (ASCII digits; no week dates, no compact
    forms): the one date format of the API, in bodies and in query strings."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        refuse("must be a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        refuse(f"is not a real date: {value}")


def _instant(value: object) -> dt.datetime:
    """An RFC 3339 instant with its offset (`2026-12-01T10:00:00Z`), in UTC, to microseconds
    (the ledger's precision: further digits are dropped)."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        refuse("must be an RFC 3339 date-time with an offset")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        instant = dt.datetime.fromisoformat(f"{match['day']}T{match['time']}.{fraction}{offset}")
        return instant.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        refuse(f"is not a real date-time: {value}")


def _effective_date(value: object) -> dt.date:
    day = today_utc() if value is None else _calendar_date(value)
    if day > today_utc() + dt.timedelta(days=MAX_EFFECTIVE_DAYS_AHEAD):
        refuse(f"may be at most {MAX_EFFECTIVE_DAYS_AHEAD} days ahead")
    return day


def _expires_at(value: object) -> dt.datetime | None:
    # "In the future" is the engine's to judge, for new entries only: a retry of a hold whose
    # instant has passed must still replay its stored response, not fail here.
    if value is None:
        return None
    instant = _instant(value)
    if instant > dt.datetime.now(dt.UTC) + dt.timedelta(days=MAX_HOLD_DAYS):
        refuse(f"may be at most {MAX_HOLD_DAYS} days ahead")
    return instant


def _metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        refuse("must be a JSON object")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        refuse(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


def _description(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        refuse("must be a string")
    if value is not None and len(value) > MAX_DESCRIPTION_CHARS:
        refuse(f"must be at most {MAX_DESCRIPTION_CHARS} characters")
    return value


def _not_an_id(code: str) -> str:
    if _UUID.fullmatch(code):
        refuse("must not look like an account id (a UUID)")
    return code


AccountReference = Annotated[
    AccountRef,
    PlainValidator(_account_ref),
    WithJsonSchema({"type": "string", "description": "an account id or code"}),
]
CalendarDate = Annotated[dt.date, PlainValidator(_calendar_date), WithJsonSchema(DATE_SCHEMA)]
Instant = Annotated[dt.datetime, PlainValidator(_instant), WithJsonSchema(INSTANT_SCHEMA)]
EffectiveDate = Annotated[
    dt.date,
    PlainValidator(_effective_date),
    WithJsonSchema({**DATE_SCHEMA, "description": "today (UTC) when left out; at most "
                    f"{MAX_EFFECTIVE_DAYS_AHEAD} days ahead"}),
]  # fmt: skip
ExpiresAt = Annotated[
    dt.datetime | None,
    PlainValidator(_expires_at),
    WithJsonSchema({**INSTANT_SCHEMA,
                    "description": f"pending entries only; at most {MAX_HOLD_DAYS} days ahead"}),
]  # fmt: skip
Metadata = Annotated[
    dict[str, Any],
    PlainValidator(_metadata),
    WithJsonSchema({"type": "object", "description": f"at most {MAX_METADATA_BYTES} bytes"}),
]
Description = Annotated[
    str | None,
    PlainValidator(_description),
    WithJsonSchema({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}),
]
AccountCode = Annotated[
    str,
    Field(pattern=f"^{ACCOUNT_CODE_PATTERN}$"),
    says("must be 1-64 characters of A-Z a-z 0-9 _ . : -"),
]
ExpectedVersion = Annotated[
    int | None,
    Field(ge=0, le=INT64_MAX),
    says(f"must be an integer >= 0 and at most {INT64_MAX}"),
    Field(description="the account's version before this entry (its `version` when last "
          "read): any other version is a 409 version_conflict and nothing is written; null "
          "is the same as leaving it out (no check)"),
]  # fmt: skip
IdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS, pattern=r"^[\x20-\x7e]+$"),
]


def parse_account_ref(value: object, *, field: str) -> AccountRef:
    return check(AccountReference, value, field=field)  # type: ignore[no-any-return]


def parse_date(value: object, *, field: str) -> dt.date:
    return check(CalendarDate, value, field=field)  # type: ignore[no-any-return]


def parse_instant(value: object, *, field: str) -> dt.datetime:
    return check(Instant, value, field=field)  # type: ignore[no-any-return]


def parse_as_of(raw: object, *, field: str = "as_of") -> dt.date:
    """A day to close or to read the snapshot of (a day after it must exist)."""
    day = parse_date(raw, field=field)
    if day >= dt.date.max:
        raise ValidationError(f"{field} is out of range")
    return day


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


# --- bodies ----------------------------------------------------------------------------------


def _not_blank(text: str) -> str:
    if not text.strip():
        refuse("must be a non-empty string")
    return text


class NewAccount(Body):
    """`POST /v1/accounts`."""

    code: Annotated[AccountCode, AfterValidator(_not_an_id)]
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_not_blank)]
    type: Annotated[AccountType, says(f"must be one of {', '.join(ACCOUNT_TYPES)}")]
    currency: Currency
    allow_negative: Annotated[bool, says("must be true or false")] = False
    metadata: Metadata = Field(default_factory=dict)


class PostingLine(Body):
    """One line of a new entry."""

    account: AccountReference
    direction: Annotated[Direction, says("must be debit or credit")]
    amount: Amount
    currency: Currency | None = None
    # Optimistic concurrency (SPEC §3.5): the account's version the caller last read; the
    # engine refuses the entry (409 version_conflict) when the account has moved on since.
    expected_version: ExpectedVersion = None


class NewEntry(Body):
    """`POST /v1/entries`: posted now, or a hold (`"status": "pending"`, SPEC §3.2) that
    reserves the funds and moves no balance until it is posted, voided or expires."""

    postings: Annotated[
        list[PostingLine],
        Field(min_length=MIN_POSTINGS, max_length=MAX_POSTINGS),
    ]
    description: Description = None
    effective_date: EffectiveDate = Field(default_factory=today_utc)
    metadata: Metadata = Field(default_factory=dict)
    status: Annotated[Literal["posted", "pending"], says('must be "posted" or "pending"')] = (
        "posted"
    )
    expires_at: ExpiresAt = None

    @model_validator(mode="before")
    @classmethod
    def _expiry_only_on_holds(cls, data: object) -> object:
        if (
            isinstance(data, dict)
            and "expires_at" in data
            and data.get("status", "posted") == "posted"
        ):
            refuse('expires_at is for pending entries ("status": "pending")')
        return data

    @property
    def pending(self) -> bool:
        return self.status == "pending"


class ReversalBody(Body):
    """`POST /v1/entries/{id}/reverse`: the entry's lines with debit and credit swapped."""

    description: Description = None
    effective_date: EffectiveDate = Field(default_factory=today_utc)


class PostPendingBody(Body):
    """`POST /v1/entries/{id}/post`."""

    description: Description = None


class VoidPendingBody(Body):
    """`POST /v1/entries/{id}/void`: no body, or an empty object."""


@dataclass(frozen=True)
class Reversal:
    entry_id: uuid.UUID
    description: str | None
    effective_date: dt.date


@dataclass(frozen=True)
class PendingAction:
    """Post or void a pending entry."""

    entry_id: uuid.UUID
    description: str | None = None


def parse_new_account(body: object) -> NewAccount:
    return validated(NewAccount, body)


def parse_new_entry(body: object) -> NewEntry:
    return validated(NewEntry, body)


def parse_reversal(entry_id: uuid.UUID, body: object) -> Reversal:
    reversal = validated(ReversalBody, body)
    return Reversal(entry_id, reversal.description, reversal.effective_date)


def parse_post_pending(entry_id: uuid.UUID, body: object) -> PendingAction:
    return PendingAction(entry_id, validated(PostPendingBody, body).description)


def parse_void_pending(entry_id: uuid.UUID, body: object) -> PendingAction:
    validated(VoidPendingBody, body)
    return PendingAction(entry_id)


# --- batches (SPEC §3.1) ---------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    idempotency_key: str
    entry: NewEntry
    request_body: dict[str, Any]  # the item without its key: what a single POST would carry


def _batch_item(raw: object) -> BatchItem | ArusError:
    """One item, held to exactly the single-entry rules; an invalid item is its error (it fails
    alone, or, in an atomic batch, fails the batch at its index), never the whole request's."""
    try:
        if not isinstance(raw, dict):
            raise ValidationError("the entry must be a JSON object")
        request_body = {k: v for k, v in raw.items() if k != "idempotency_key"}
        key = parse_idempotency_key(raw.get("idempotency_key"), field="idempotency_key")
        return BatchItem(key, parse_new_entry(request_body), request_body)
    except ArusError as exc:
        return exc


class BatchItemBody(NewEntry):
    """A batch item: the body of `POST /v1/entries` and its idempotency key."""

    idempotency_key: IdempotencyKey


class Batch(Body):
    """`POST /v1/entries/batch`: `{"entries": [item, ...], "atomic": false}`."""

    entries: Annotated[
        list[
            Annotated[
                BatchItem | ArusError,
                PlainValidator(_batch_item),
                WithJsonSchema({"$ref": "#/components/schemas/BatchItemBody"}),
            ]
        ],
        Field(min_length=1, max_length=MAX_BATCH_ITEMS),
    ]
    atomic: Annotated[bool, says("must be true or false")] = False

    @model_validator(mode="before")
    @classmethod
    def _one_batch(cls, data: object) -> object:
        """What makes the request no batch at all: too many postings, a key used twice."""
        items = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return data
        postings = sum(len(i["postings"]) for i in items
                       if isinstance(i, dict) and isinstance(i.get("postings"), list))  # fmt: skip
        if postings > MAX_BATCH_POSTINGS:
            refuse(f"a batch has at most {MAX_BATCH_POSTINGS} postings in all")
        seen: set[str] = set()
        for index, item in enumerate(items):
            key = item.get("idempotency_key") if isinstance(item, dict) else None
            if isinstance(key, str) and key in seen:
                refuse(f"entries[{index}].idempotency_key is used twice in this batch")
            if isinstance(key, str):
                seen.add(key)
        return data


@dataclass(frozen=True)
class NewBatch:
    # Each item parsed, or the error it fails with, its message prefixed with its index.
    items: tuple[BatchItem | ArusError, ...]
    atomic: bool


def parse_batch(body: object) -> NewBatch:
    batch = validated(Batch, body)
    items = tuple(
        type(item)(f"entries[{index}]: {item.message}", index=index)
        if isinstance(item, ArusError) else item
        for index, item in enumerate(batch.entries)
    )  # fmt: skip
    return NewBatch(items=items, atomic=batch.atomic)


# --- list filters (SPEC §3): query parameters → typed filters ------------------------------

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
