"""The OpenAPI 3.1 document of every route (SPEC §3, §3.4): served at `GET /openapi.json`, kept in
the repository as `docs/openapi.json` (`arus openapi`), and held to the real answers by
`tests/integration/test_openapi.py` (openapi-core on real responses, schemathesis on generated
requests). Limits and error codes come from `arus.rules`, so they cannot drift from the code."""

from __future__ import annotations

from typing import Any

from arus.rules import (
    ACCOUNT_CODE_PATTERN,
    ACCOUNT_TYPES,
    DIRECTIONS,
    ERROR_STATUS,
    INT64_MAX,
    INT64_MIN,
    MAX_BATCH_ITEMS,
    MAX_DESCRIPTION_CHARS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_NAME_CHARS,
    MAX_POSTINGS,
    MIN_POSTINGS,
)

STATUSES = ("posted", "pending", "voided", "expired")
UUID = {"type": "string", "format": "uuid"}
INSTANT = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
INT64 = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
AMOUNT = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
NON_NEGATIVE = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
METADATA = {"type": "object"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    required: list[str], properties: dict[str, Any], *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(item: str) -> dict[str, Any]:
    return _object(
        ["data", "next_cursor"],
        {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": _nullable({"type": "string"}),
        },
    )


def _trial_balance_totals(description: str | None = None) -> dict[str, Any]:
    """The trial-balance columns per currency: the trial balance's, a close's and a rollup's (a
    sum over many accounts, so not bounded by int64)."""
    column = {"type": "integer", "minimum": 0}
    columns = _object(["currency", "debit", "credit"],
                      {"currency": CURRENCY, "debit": column, "credit": column})  # fmt: skip
    schema: dict[str, Any] = {"type": "array", "items": columns}
    return schema if description is None else {**schema, "description": description}


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        ["error"],
        {
            "error": _object(
                ["code", "message"],
                {
                    "code": {"type": "string", "enum": sorted(ERROR_STATUS)},
                    "message": {"type": "string"},
                    "index": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "the failing batch item",
                    },
                    "first_open_date": {
                        **DATE,
                        "description": "period_closed: the day to post into",
                    },
                },
            )
        },
    ),
    "NewAccount": _object(
        ["code", "name", "type", "currency"],
        {
            "code": {"type": "string", "pattern": f"^{ACCOUNT_CODE_PATTERN}$"},
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
            "type": {"type": "string", "enum": list(ACCOUNT_TYPES)},
            "currency": CURRENCY,
            "allow_negative": {"type": "boolean"},
            "metadata": METADATA,
        },
    ),
    "Account": _object(
        [
            "id",
            "code",
            "name",
            "type",
            "currency",
            "allow_negative",
            "metadata",
            "balance",
            "pending_debits",
            "pending_credits",
            "available_balance",
            "version",
            "created_at",
        ],
        {
            "id": UUID,
            "code": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string", "enum": list(ACCOUNT_TYPES)},
            "currency": CURRENCY,
            "allow_negative": {"type": "boolean"},
            "metadata": METADATA,
            "balance": INT64,
            "pending_debits": NON_NEGATIVE,
            "pending_credits": NON_NEGATIVE,
            "available_balance": {"type": "integer"},
            "version": {
                **NON_NEGATIVE,
                "description": "0 at creation, +1 per posted posting applied; send it as a "
                "posting's expected_version to post only if the account has not moved",
            },
            "created_at": INSTANT,
        },
    ),
    "PostingLine": _object(
        ["account", "direction", "amount"],
        {
            "account": {"type": "string", "description": "an account id or code"},
            "direction": {"type": "string", "enum": list(DIRECTIONS)},
            "amount": AMOUNT,
            "currency": CURRENCY,
            "expected_version": {
                **_nullable(NON_NEGATIVE),
                "description": "the account's version before this entry (its `version` when "
                "last read): any other version is a 409 version_conflict and nothing is "
                "written; null is the same as leaving it out (no check)",
            },
        },
    ),
    "NewEntry": _object(
        ["postings"],
        {
            "postings": {
                "type": "array",
                "minItems": MIN_POSTINGS,
                "maxItems": MAX_POSTINGS,
                "items": _ref("PostingLine"),
            },
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS},
            "effective_date": DATE,
            "metadata": METADATA,
            "status": {"type": "string", "enum": ["posted", "pending"]},
            "expires_at": {**INSTANT, "description": "pending entries only; at most 90 days ahead"},
        },
    ),
    "EntryPosting": _object(
        ["account_id", "account_code", "direction", "amount", "currency", "account_version"],
        {
            "account_id": UUID,
            "account_code": {"type": "string"},
            "direction": {"type": "string", "enum": list(DIRECTIONS)},
            "amount": AMOUNT,
            "currency": CURRENCY,
            "account_version": {
                **_nullable({"type": "integer", "minimum": 1, "maximum": INT64_MAX}),
                "description": "the account's version this posting made; null for a pending "
                "entry's lines (they move no balance)",
            },
        },
    ),
    "Entry": _object(
        [
            "id",
            "ledger_seq",
            "status",
            "description",
            "effective_date",
            "metadata",
            "postings",
            "reverses",
            "reversed_by",
            "posts",
            "posted_by",
            "expires_at",
            "created_at",
        ],
        {
            "id": UUID,
            "ledger_seq": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": list(STATUSES)},
            "description": _nullable({"type": "string"}),
            "effective_date": DATE,
            "metadata": METADATA,
            "postings": {"type": "array", "items": _ref("EntryPosting")},
            "reverses": _nullable(UUID),
            "reversed_by": _nullable(UUID),
            "posts": _nullable(UUID),
            "posted_by": _nullable(UUID),
            "expires_at": _nullable(INSTANT),
            "created_at": INSTANT,
        },
    ),
    "Reversal": _object(
        [],
        {
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS},
            "effective_date": DATE,
        },
    ),
    "PostPending": _object(
        [], {"description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}}
    ),
    "VoidPending": _object([], {}),
    "BatchItem": {
        "allOf": [_ref("NewEntry")],
        "type": "object",
        "required": ["idempotency_key", "postings"],
        "properties": {
            "idempotency_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
            }
        },
    },
    "Batch": _object(
        ["entries"],
        {
            "entries": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_ITEMS,
                "items": {"type": "object"},
            },
            "atomic": {"type": "boolean"},
        },
    ),
    "BatchResults": _object(
        ["results"],
        {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "integer"},
                        "entry": _ref("Entry"),
                        "replayed": {"type": "boolean"},
                        "error": {"type": "object", "required": ["code", "message"]},
                    },
                },
            }
        },
    ),
    "AccountPosting": _object(
        [
            "id",
            "entry_id",
            "ledger_seq",
            "direction",
            "amount",
            "currency",
            "balance_after",
            "account_version",
            "effective_date",
            "created_at",
        ],
        {
            "id": {"type": "integer"},
            "entry_id": UUID,
            "ledger_seq": {"type": "integer"},
            "direction": {"type": "string", "enum": list(DIRECTIONS)},
            "amount": AMOUNT,
            "currency": CURRENCY,
            "balance_after": INT64,
            "account_version": {
                "type": "integer",
                "minimum": 1,
                "maximum": INT64_MAX,
                "description": "the account's version this posting made",
            },
            "effective_date": DATE,
            "created_at": INSTANT,
        },
    ),
    "AccountPage": _page("Account"),
    "EntryPage": _page("Entry"),
    "AccountPostingPage": _page("AccountPosting"),
    "TrialBalance": _object(
        ["accounts", "totals", "balanced", "drift"],
        {
            "accounts": {"type": "array", "items": {"type": "object"}},
            "totals": _trial_balance_totals(),
            "balanced": {"type": "boolean"},
            "drift": {"type": "array", "items": {"type": "object"}},
        },
    ),
    "Balance": _object(
        ["account_id", "account_code", "currency", "balance"],
        {
            "account_id": UUID,
            "account_code": {"type": "string"},
            "currency": CURRENCY,
            "balance": INT64,
        },
    ),
    "Balances": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("Balance")},
            "next_cursor": _nullable({"type": "string"}),
            "as_of": DATE,
            "closed_at": INSTANT,
            "at": INSTANT,
        },
        "additionalProperties": False,
    },
    "AccountBalanceAt": _object(
        ["account_id", "at", "balance"], {"account_id": UUID, "at": INSTANT, "balance": INT64}
    ),
    "Close": _object(
        ["close_date", "last_ledger_seq", "seal", "closed_at", "accounts", "totals", "balanced"],
        {
            "close_date": DATE,
            "last_ledger_seq": {
                "type": "integer",
                "minimum": 0,
                "description": "the journal is sealed through this entry",
            },
            "seal": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 chain over the journal since the previous close "
                "(docs/seal.md)",
            },
            "closed_at": INSTANT,
            "accounts": {
                "type": "integer",
                "minimum": 0,
                "description": "accounts with postings dated through the day",
            },
            "totals": _trial_balance_totals(),
            "balanced": {"type": "boolean"},
        },
    ),
    "ClosePage": _page("Close"),
    "Rollup": _object(
        ["prefix", "accounts", "totals"],
        {
            "prefix": {"type": "string", "pattern": f"^{ACCOUNT_CODE_PATTERN}$"},
            "accounts": {"type": "integer", "minimum": 0},
            "totals": _trial_balance_totals("one per currency of the accounts summed, by currency"),
            "at": {**INSTANT, "description": "the instant asked for, when asked for"},
            "as_of": {**DATE, "description": "the closed day asked for, when asked for"},
        },
    ),
    "StatementLine": _object(
        [
            "entry_id",
            "ledger_seq",
            "effective_date",
            "description",
            "direction",
            "amount",
            "currency",
            "balance",
        ],
        {
            "entry_id": UUID,
            "ledger_seq": {"type": "integer", "minimum": 1},
            "effective_date": DATE,
            "description": _nullable({"type": "string"}),
            "direction": {"type": "string", "enum": list(DIRECTIONS)},
            "amount": AMOUNT,
            "currency": CURRENCY,
            "balance": {
                "type": "integer",
                "description": "the running balance: opening_balance plus the lines through "
                "this one, across pages",
            },
        },
    ),
    "Statement": _object(
        [
            "account_id",
            "from",
            "to",
            "opening_balance",
            "closing_balance",
            "lines",
            "next_cursor",
        ],
        {
            "account_id": UUID,
            "from": DATE,
            "to": DATE,
            "opening_balance": {
                "type": "integer",
                "description": "the posted postings of entries dated before `from`",
            },
            "closing_balance": {
                "type": "integer",
                "description": "the posted postings of entries dated through `to`, on every page",
            },
            "lines": {"type": "array", "items": _ref("StatementLine")},
            "next_cursor": _nullable({"type": "string"}),
        },
    ),
    "Health": _object(["status"], {"status": {"type": "string"}}),
    "RelayOutcome": {"type": "object"},
    "Closes": {"type": "object"},
}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "malformed JSON",
        401: "missing, malformed, unknown or revoked key",
        403: "a read key on a mutation",
        404: "no such object in this ledger",
        405: "method not allowed",
        409: "conflict",
        413: "body over the limit",
        415: "not application/json",
        422: "refused: nothing was written",
        503: "the database is unreachable or timed out (see Retry-After)",
    }
    return {
        str(status): {
            "description": described[status],
            "content": {"application/json": {"schema": _ref("Error")}},
            **(
                {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                if status == 503
                else {}
            ),
        }
        for status in statuses
    }


def _json(schema: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
        **extra,
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
        "pattern": "^[\\x20-\\x7e]+$",
    },
}
REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
REF = {
    "name": "ref",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "an account id or code",
}
ENTRY_ID = {"name": "entry_id", "in": "path", "required": True, "schema": UUID}
MUTATION_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 503)
VERSION_CONFLICT = (
    "conflict: idempotency_conflict (the key was used with another body), or "
    "version_conflict (a posting's expected_version is not its account's version before the "
    "entry; nothing was written: read the account again and post with a new key)"
)
BATCH_VERSION_CONFLICT = (
    "conflict: an atomic batch refused at one item (the error's `index`), e.g. "
    "version_conflict or idempotency_conflict, and nothing was written; in a batch that is "
    "not atomic each item answers its own 409 in `results` and the others are judged alone"
)
READ_ERRORS = (401, 404, 422, 503)


def _mutation(body: str, ok: int, answer: str, *, key: bool = True, **extra: Any) -> dict[str, Any]:
    ok_response = _json(answer, "done", headers=REPLAYED) if ok == 200 else _json(answer, "created")
    responses = {str(ok): ok_response, **_errors(*MUTATION_ERRORS)}
    if ok == 201:
        responses["200"] = _json(answer, "a replay of the original answer", headers=REPLAYED)
    return {
        "parameters": [IDEMPOTENCY_KEY] if key else [],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
        "responses": responses,
        **extra,
    }


def _read(answer: str, parameters: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "parameters": parameters,
        "responses": {"200": _json(answer, "found"), **_errors(*READ_ERRORS)},
        **extra,
    }


STATEMENT_CSV_HEADERS = {
    "X-Account-Id": ("the account", UUID),
    "X-Statement-From": ("from", DATE),
    "X-Statement-To": ("to", DATE),
    "X-Opening-Balance": ("opening_balance", {"type": "string", "pattern": "^-?[0-9]+$"}),
    "X-Closing-Balance": ("closing_balance", {"type": "string", "pattern": "^-?[0-9]+$"}),
    "X-Next-Cursor": ("next_cursor; absent on the last page", {"type": "string"}),
}


def _statement() -> dict[str, Any]:
    """`GET /v1/accounts/{ref}/statement`: JSON, or CSV when Accept prefers text/csv."""
    day = {"type": "string", "format": "date"}
    return {
        "operationId": "accountStatement",
        "description": "An account's posted postings by effective date: the lines of entries "
        "dated `from`..`to` (at most 366 days, both included) in (effective_date, ledger_seq, "
        "position) order, each with the running balance, a page at a time; pending entries "
        "have no postings and are not lines. Balances are signed by the account's normal "
        "side. `Accept: text/csv` gives the page as CSV (RFC 4180): a header row "
        "(entry_id, ledger_seq, effective_date, description, direction, amount, currency, "
        "balance) and one row per line; the rest of the JSON answer is in the X-* headers, "
        "the next page's cursor in X-Next-Cursor. A CSV description that starts with = + - @, "
        "a tab or a carriage return is prefixed with ' (no spreadsheet runs it).",
        "parameters": [
            REF,
            {"name": "from", "in": "query", "required": True, "schema": day},
            {"name": "to", "in": "query", "required": True, "schema": day},
            *PAGING,
        ],
        "responses": {
            "200": {
                "description": "one page of the statement",
                "headers": {
                    name: {"description": f"text/csv only: {what}", "schema": schema}
                    for name, (what, schema) in STATEMENT_CSV_HEADERS.items()
                },
                "content": {
                    "application/json": {"schema": _ref("Statement")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            **_errors(*READ_ERRORS),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    filters = [
        {"name": n, "in": "query", "schema": s}
        for n, s in (
            ("account", {"type": "string"}),
            ("effective_from", DATE),
            ("effective_to", DATE),
            ("status", {"type": "string", "enum": list(STATUSES)}),
        )
    ]
    account_filters = [
        {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(ACCOUNT_TYPES)}},
        {"name": "currency", "in": "query", "schema": CURRENCY},
    ]
    paths: dict[str, Any] = {
        "/v1/accounts": {
            "post": {
                **_mutation("NewAccount", 201, "Account"),
                "operationId": "createAccount",
                "parameters": [{**IDEMPOTENCY_KEY, "required": False}],
            },
            "get": _read("AccountPage", [*PAGING, *account_filters], operationId="listAccounts"),
        },
        "/v1/accounts/{ref}": {"get": _read("Account", [REF], operationId="getAccount")},
        "/v1/accounts/{ref}/postings": {
            "get": _read("AccountPostingPage", [REF, *PAGING], operationId="accountPostings")
        },
        "/v1/accounts/{ref}/balance": {
            "get": _read(
                "AccountBalanceAt",
                [REF, {"name": "at", "in": "query", "required": True, "schema": INSTANT}],
                operationId="accountBalanceAt",
            )
        },
        "/v1/entries": {
            "post": {**_mutation("NewEntry", 201, "Entry"), "operationId": "postEntry"},
            "get": _read(
                "EntryPage",
                [*PAGING, *filters],
                operationId="listEntries",
                description="Filters combine with AND; `metadata.<key>=<value>` "
                "filters on metadata too.",
            ),
        },
        "/v1/entries/batch": {
            "post": {
                **_mutation("Batch", 200, "BatchResults", key=False),
                "operationId": "postBatch",
            }
        },
        "/v1/entries/{entry_id}": {"get": _read("Entry", [ENTRY_ID], operationId="getEntry")},
        "/v1/entries/{entry_id}/reverse": {
            "post": {**_mutation("Reversal", 201, "Entry"), "operationId": "reverseEntry"}
        },
        "/v1/entries/{entry_id}/post": {
            "post": {**_mutation("PostPending", 201, "Entry"), "operationId": "postPending"}
        },
        "/v1/entries/{entry_id}/void": {
            "post": {**_mutation("VoidPending", 200, "Entry"), "operationId": "voidPending"}
        },
        "/v1/trial-balance": {"get": _read("TrialBalance", [], operationId="trialBalance")},
        "/v1/balances": {
            "get": _read(
                "Balances",
                [
                    *PAGING,
                    {"name": "as_of", "in": "query", "schema": DATE},
                    {"name": "at", "in": "query", "schema": INSTANT},
                ],
                operationId="balances",
            )
        },
        "/v1/closes": {
            "get": _read(
                "ClosePage",
                PAGING,
                operationId="listCloses",
                description="The ledger's daily closes, the latest first, each with its seal.",
            )
        },
        "/v1/closes/{date}": {
            "get": _read(
                "Close",
                [{"name": "date", "in": "path", "required": True, "schema": DATE}],
                operationId="getClose",
                description="One daily close (404 if the day is not closed): its books by "
                "effective date and the seal of the journal through `last_ledger_seq`.",
            )
        },
        "/v1/rollups": {
            "get": _read(
                "Rollup",
                [
                    {
                        "name": "prefix",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^{ACCOUNT_CODE_PATTERN}$"},
                        "description": "the start of the codes summed, taken literally "
                        "(`wallet:` covers `wallet:ana` and `wallet:ana:savings`)",
                    },
                    {"name": "at", "in": "query", "schema": INSTANT},
                    {"name": "as_of", "in": "query", "schema": DATE},
                ],
                operationId="rollup",
                description="The trial-balance columns (a balance on its account's normal "
                "side is that side's column, a negative one the other's) summed per currency "
                "over every account whose code starts with `prefix`: current balances; with "
                "`at`, the balances at that instant, over the accounts that existed then; "
                "with `as_of`, the daily close of that day (404 if it is not closed). `at` and "
                "`as_of` together are a 422.",
            )
        },
        "/v1/accounts/{ref}/statement": {"get": _statement()},
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "security": [],
                "tags": ["operations"],
                "responses": {"200": _json("Health", "the process answers")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "security": [],
                "tags": ["operations"],
                "responses": {"200": _json("Health", "the database answers"), **_errors(503)},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "tags": ["operations"],
                "responses": {"200": {"description": "this document"}},
            }
        },
        "/jobs/relay": {
            "post": {
                "operationId": "relay",
                "tags": ["jobs"],
                "security": [{"operator": []}],
                "responses": {
                    "200": _json("RelayOutcome", "one relay run"),
                    "503": _json("RelayOutcome", "the transport failed"),
                    **_errors(401),
                },
            }
        },
        "/jobs/daily-close": {
            "post": {
                "operationId": "dailyClose",
                "tags": ["jobs"],
                "security": [{"operator": []}],
                "requestBody": {
                    "content": {"application/json": {"schema": _object([], {"date": DATE})}}
                },
                "responses": {
                    "200": _json("Closes", "every ledger's close"),
                    "500": _json("Closes", "a ledger did not close: imbalance or drift"),
                    **_errors(401, 422),
                },
            }
        },
    }
    for path in (
        "/v1/entries/{entry_id}/reverse",
        "/v1/entries/{entry_id}/post",
        "/v1/entries/{entry_id}/void",
    ):
        paths[path]["post"]["parameters"] = [ENTRY_ID, *paths[path]["post"]["parameters"]]
    # Where a posting line may carry expected_version (SPEC §3.5), its 409 says so.
    paths["/v1/entries"]["post"]["responses"]["409"]["description"] = VERSION_CONFLICT
    paths["/v1/entries/batch"]["post"]["responses"]["409"]["description"] = BATCH_VERSION_CONFLICT
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Arus",
            "version": "2",
            "description": "A double-entry ledger (SPEC v2). Amounts are integers in "
            "minor units; every mutation is idempotent.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "arus_<key id>_<secret>: the key decides the ledger",
                },
                "operator": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ARUS_OPERATOR_TOKEN (arus serve only)",
                },
            },
        },
    }
