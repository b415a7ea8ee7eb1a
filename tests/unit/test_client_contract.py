"""The client's types are held to the generated OpenAPI document: each result type has exactly
the fields of the answer it reads (renames and client-only fields declared here), every answer
a route gives on success is read by some client type, and the client exports every public name.
A field added to an answer model (ledger/answers.py) fails here until the client reads it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from arus.web.openapi import document
from arus_client import client

SCHEMAS = document()["components"]["schemas"]
# client type -> (the answer schema it reads, {client field: wire field}, fields it adds or
# splits off: `replayed` comes from the Idempotent-Replayed header, the two balance snapshots
# are one wire shape read per query, a batch result's error is flattened).
READS: dict[type, tuple[str, dict[str, str], set[str]]] = {
    client.Account: ("Account", {}, {"replayed"}),
    client.Entry: ("Entry", {}, {"replayed"}),
    client.EntryPosting: ("EntryPosting", {}, set()),
    client.AccountPosting: ("AccountPosting", {}, set()),
    client.TrialBalance: ("TrialBalance", {}, set()),
    client.TrialBalanceLine: ("TrialBalanceLine", {}, set()),
    client.SnapshotBalance: ("Balance", {}, set()),
    client.BalancesAt: ("Balances", {}, {"as_of", "closed_at"}),
    client.BalanceSnapshot: ("Balances", {}, {"at"}),
    client.BatchResult: (
        "BatchResult",
        {"error_code": "error", "error_message": "error"},
        {"replayed"},
    ),
    client.RollupTotal: ("CurrencyTotals", {}, set()),
    client.Rollup: ("Rollup", {}, {"at", "as_of"}),
    client.Close: ("Close", {}, set()),
    client.StatementLine: ("StatementLine", {}, set()),
    client.Statement: ("Statement", {"from_date": "from", "to_date": "to"}, set()),
    client.NewPosting: ("PostingLine", {}, set()),
}


@pytest.mark.parametrize("kind", READS, ids=lambda kind: kind.__name__)
def test_a_client_type_has_exactly_the_fields_of_its_answer(kind):
    schema, renamed, apart = READS[kind]
    wire = set(SCHEMAS[schema]["properties"])
    fields = {renamed.get(f.name, f.name) for f in dataclasses.fields(kind)}
    assert fields - apart == wire - apart, f"{kind.__name__} vs {schema}"


def test_every_answer_of_a_route_is_read_by_a_client_type():
    answers = set()
    for path, item in document()["paths"].items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema and path.startswith("/v1/"):
                    answers.add(schema["$ref"].rsplit("/", 1)[-1])
    pages = {f"{name}Page" for name in SCHEMAS} | {"BatchResults"}  # read as Page / a list
    pages.add("AccountBalanceAt")  # balance_at returns its `balance`
    read = {schema for schema, _, _ in READS.values()}
    assert answers - pages - read == set()


def test_the_client_exports_every_public_class():
    public = {name for name, value in vars(client).items()
              if inspect.isclass(value) and value.__module__ == client.__name__
              and not name.startswith("_")}  # fmt: skip
    assert public <= set(client.__all__), sorted(public - set(client.__all__))


def test_the_client_has_a_class_for_every_error_code():
    from arus.rules import ERROR_STATUS

    errors = [cls for cls in vars(client).values()
              if inspect.isclass(cls) and issubclass(cls, client.ArusApiError)]  # fmt: skip
    codes = {cls.CODE for cls in errors if cls.CODE}
    assert set(ERROR_STATUS) - codes == set()
