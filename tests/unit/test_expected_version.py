"""A posting line's `expected_version` (SPEC §3.5), parsed without a database: a JSON integer
0..INT64_MAX or nothing (null is the same as absent), carried to the engine only when given."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from arus import errors
from arus.ledger.commands import parse_batch, parse_new_entry
from arus.ledger.gateway import _lines
from arus.rules import ERROR_STATUS, INT64_MAX
from arus.web.openapi import document
from arus_client import client as arus_client

ENTRY: dict[str, Any] = {
    "postings": [
        {"account": "cash", "direction": "debit", "amount": 5},
        {"account": "sales", "direction": "credit", "amount": 5},
    ]
}


def with_version(value: object, *, line: int = 1) -> dict[str, Any]:
    body = copy.deepcopy(ENTRY)
    body["postings"][line]["expected_version"] = value
    return body


@pytest.mark.parametrize("version", [0, 1, 41, INT64_MAX])
def test_an_integer_from_zero_to_int64_max_is_carried_to_the_engine(version):
    entry = parse_new_entry(with_version(version))
    assert [line.expected_version for line in entry.postings] == [None, version]
    lines = _lines(entry)
    assert "expected_version" not in lines[0]
    assert lines[1]["expected_version"] == version and type(lines[1]["expected_version"]) is int


@pytest.mark.parametrize(
    "value",
    [True, False, 1.0, 3.5, "3", "", -1, INT64_MAX + 1, [1], {"v": 1}],
    ids=repr,
)
def test_anything_but_an_integer_in_range_is_a_validation_error_naming_the_field(value):
    with pytest.raises(errors.ValidationError) as refused:
        parse_new_entry(with_version(value))
    assert refused.value.status == 422
    assert refused.value.message.startswith("postings[1].expected_version must be an integer >= 0")


def test_null_is_the_same_as_leaving_it_out():
    assert parse_new_entry(with_version(None)) == parse_new_entry(ENTRY)
    assert all("expected_version" not in line for line in _lines(parse_new_entry(ENTRY)))


def test_the_engine_lines_keep_their_shape_without_it():
    assert _lines(parse_new_entry(ENTRY)) == [
        {"account_code": "cash", "direction": "debit", "amount": 5},
        {"account_code": "sales", "direction": "credit", "amount": 5},
    ]


def test_it_is_allowed_on_a_pending_entry_too():
    entry = parse_new_entry({**with_version(7, line=0), "status": "pending"})
    assert entry.pending and _lines(entry)[0]["expected_version"] == 7


def test_a_batch_item_carries_it_and_a_bad_one_fails_that_item_alone():
    good = {**with_version(0, line=0), "idempotency_key": "a"}
    bad = {**with_version("0", line=0), "idempotency_key": "b"}
    batch = parse_batch({"entries": [good, bad]})
    first, second = batch.items
    assert not isinstance(first, errors.ArusError)
    assert _lines(first.entry)[0]["expected_version"] == 0
    assert isinstance(second, errors.ValidationError) and second.index == 1
    assert "entries[1]: postings[0].expected_version must be an integer >= 0" in second.message


def test_version_conflict_is_a_409_the_engine_hint_maps_to():
    assert ERROR_STATUS["version_conflict"] == 409
    assert errors.BY_CODE["version_conflict"] is errors.VersionConflict
    raised = errors.from_database(
        Exception({"C": "P0001", "H": "version_conflict", "M": "stale", "D": "index=3"})
    )
    assert isinstance(raised, errors.VersionConflict)
    assert raised.status == 409 and raised.index == 3 and raised.message == "stale"
    assert arus_client.ERRORS_BY_CODE["version_conflict"] is arus_client.VersionConflictError
    assert "VersionConflictError" in arus_client.__all__


def test_the_document_states_the_contract():
    schemas = document()["components"]["schemas"]
    line = schemas["PostingLine"]["properties"]["expected_version"]
    assert {"type": "integer", "minimum": 0, "maximum": INT64_MAX} in line["anyOf"]
    assert "version" in schemas["Account"]["required"]
    assert "account_version" in schemas["EntryPosting"]["required"]
    assert "account_version" in schemas["AccountPosting"]["required"]
    for path in ("/v1/entries", "/v1/entries/batch"):
        conflict = document()["paths"][path]["post"]["responses"]["409"]["description"]
        assert "version_conflict" in conflict, path


def test_the_client_sends_it_only_when_set_and_reads_versions_from_old_servers_too():
    plain = arus_client.NewPosting("cash", "debit", 5)
    assert "expected_version" not in plain.to_json()
    assert arus_client.NewPosting("cash", "debit", 5, expected_version=0).to_json()[
        "expected_version"
    ] == 0  # fmt: skip
    with pytest.raises(TypeError):
        arus_client.NewPosting("cash", "debit", 5, expected_version=True)
    with pytest.raises(ValueError):
        arus_client.NewPosting("cash", "debit", 5, expected_version=-1)
    posting = {"account_id": "a", "account_code": "cash", "direction": "debit", "amount": 5,
               "currency": "USD"}  # fmt: skip
    assert arus_client.EntryPosting.from_json(posting).account_version is None
    made = arus_client.EntryPosting.from_json({**posting, "account_version": 4})
    assert made.account_version == 4
