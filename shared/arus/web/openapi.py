"""The OpenAPI 3.1 document of every route (SPEC §3, §3.4): served at `GET /openapi.json`, kept in
the repository as `docs/openapi.json` (`arus openapi`), and held to the real answers by
`tests/integration/test_openapi.py` (openapi-core on real responses, schemathesis on generated
requests). The schemas are generated from the models that validate the requests
(`ledger/commands.py`) and state the answers (`ledger/answers.py`); this module adds the
routes, their parameters and their statuses."""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from arus.ledger import answers, commands
from arus.ledger.money import Currency
from arus.rules import ACCOUNT_TYPES, ENTRY_STATUSES, MAX_IDEMPOTENCY_KEY_CHARS

UUID = {"type": "string", "format": "uuid"}
INSTANT = commands.INSTANT_SCHEMA
DATE = commands.DATE_SCHEMA
CURRENCY = TypeAdapter(Currency).json_schema()
ACCOUNT_CODE = TypeAdapter(commands.AccountCode).json_schema()

REQUESTS: tuple[type[BaseModel], ...] = (
    commands.NewAccount, commands.NewEntry, commands.BatchItemBody, commands.Batch,
    commands.ReversalBody, commands.PostPendingBody, commands.VoidPendingBody,
    answers.CloseRequest,
)  # fmt: skip
ANSWERS: tuple[type[BaseModel], ...] = (
    answers.Error, answers.Account, answers.AccountPage, answers.Entry, answers.EntryPage,
    answers.BatchResults, answers.AccountPostingPage, answers.TrialBalance, answers.Balances,
    answers.AccountBalanceAt, answers.Close, answers.ClosePage, answers.Rollup,
    answers.Statement, answers.Health, answers.RelayOutcome, answers.Closes,
)  # fmt: skip


class _Schemas(GenerateJsonSchema):
    """Pydantic's JSON Schema without what only repeats the field's name or says nothing."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        generated = super().default_schema(schema)
        if generated.get("default", 0) is None:
            del generated["default"]  # "absent" is not "null"
        return generated


def schemas() -> dict[str, Any]:
    """components/schemas: every request and answer model and the models they name (a fresh
    copy of what is generated once per process: generating takes ~8 ms, and `GET
    /openapi.json` needs no key)."""
    return json.loads(_generated_schemas())  # type: ignore[no-any-return]


@functools.cache
def _generated_schemas() -> str:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in REQUESTS),
        *((model, "serialization") for model in ANSWERS),
    ]
    _, generated = models_json_schema(
        models, ref_template="#/components/schemas/{model}", schema_generator=_Schemas
    )
    named = {name: {k: v for k, v in schema.items() if k != "title"}
             for name, schema in sorted(generated["$defs"].items())}  # fmt: skip
    # Pydantic also emits the schemas of types it validates by function (the AccountRef a
    # posting's `account` becomes): no body or answer names them, so they are left out.
    wanted = {model.__name__ for model, _ in models}
    text = json.dumps(named)
    return json.dumps({name: schema for name, schema in named.items()
                       if name in wanted or f'schemas/{name}"' in text})  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
            ("status", {"type": "string", "enum": list(ENTRY_STATUSES)}),
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
            "post": {**_mutation("ReversalBody", 201, "Entry"), "operationId": "reverseEntry"}
        },
        "/v1/entries/{entry_id}/post": {
            "post": {**_mutation("PostPendingBody", 201, "Entry"), "operationId": "postPending"}
        },
        "/v1/entries/{entry_id}/void": {
            "post": {**_mutation("VoidPendingBody", 200, "Entry"), "operationId": "voidPending"}
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
                        "schema": ACCOUNT_CODE,
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
                "requestBody": {"content": {"application/json": {"schema": _ref("CloseRequest")}}},
                "responses": {
                    "200": _json("Closes", "every ledger's close"),
                    "500": _json(
                        "Closes",
                        "a ledger did not close (imbalance, drift) or a placement was down",
                    ),
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
            "schemas": schemas(),
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
