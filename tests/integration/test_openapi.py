"""The OpenAPI 3.1 contract (SPEC §3.4): the document is served and kept in the repository, real
answers conform to it (openapi-core), and schemathesis sends 1,000+ generated requests, every
one answered without a 5xx and as documented."""

from __future__ import annotations

import json
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from arus.web import openapi
from arus.web.app import create_app
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_spec_validator import validate

from tests.support.ledgers import REPO, Ledger, new_ledger

NOT_BUSINESS_RULES = schemathesis.checks.positive_data_acceptance
GENERATED_PER_OPERATION = 90  # x 16 operations (a few exhaust sooner): past 1,000 requests


def test_the_document_is_valid_openapi_3_1_and_the_repository_copy_is_current(api):
    document = openapi.document()
    validate(document)
    assert api.get("/openapi.json").get_json() == document
    stored = json.loads((REPO / "docs/openapi.json").read_text())
    assert stored == document, "docs/openapi.json is stale: run `arus openapi > docs/openapi.json`"


def test_every_route_the_app_serves_is_documented(app_settings):
    import dataclasses

    app = create_app(dataclasses.replace(app_settings, operator_token="t" * 32))
    served = {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS") and rule.endpoint != "static"
    }
    documented = {(path, method) for path, item in openapi.document()["paths"].items()
                  for method in item}  # fmt: skip
    assert served == documented


def test_every_error_code_is_in_the_document():
    from arus.rules import ERROR_STATUS

    error = openapi.document()["components"]["schemas"]["ErrorDetail"]
    assert set(error["properties"]["code"]["enum"]) == set(ERROR_STATUS)


def test_real_answers_conform_to_the_document(api, ledger):
    spec = OpenAPI.from_dict(openapi.document())
    write, read = ledger.write_key, ledger.read_key
    real_post, real_get = api.post, api.get

    class Recording:
        """The api fixture, remembering each POST's body for the validation below."""

        def post(self, path: str, **kwargs: Any) -> Any:
            answer = real_post(path, **kwargs)
            answer.sent_body = json.dumps(kwargs.get("json")).encode()
            return answer

        def get(self, path: str, **kwargs: Any) -> Any:
            return real_get(path, **kwargs)

    api = Recording()
    key = uuid.uuid4().hex
    entry = {"postings": [{"account": "cash", "direction": "debit", "amount": 5},
                          {"account": "equity", "direction": "credit", "amount": 5}]}  # fmt: skip
    hold = {**entry, "status": "pending"}
    calls: list[Any] = [
        lambda: api.post("/v1/accounts", key=write, json={
            "code": "cash", "name": "Cash", "type": "asset", "currency": "USD"}),
        lambda: api.post("/v1/accounts", key=write, json={
            "code": "equity", "name": "Equity", "type": "equity", "currency": "USD",
            "allow_negative": True, "metadata": {"k": "v"}}),
        lambda: api.post("/v1/accounts", key=write, json={
            "code": "cash", "name": "Again", "type": "asset", "currency": "USD"}),
        lambda: api.post("/v1/entries", key=write, idempotency_key=key, json=entry),
        lambda: api.post("/v1/entries", key=write, idempotency_key=key, json=entry),
        lambda: api.post("/v1/entries", key=write, idempotency_key=key, json={**entry,
                                                                          "description": "x"}),
        lambda: api.post("/v1/entries", key=write, json=entry),
        lambda: api.post("/v1/entries", key=read, idempotency_key="k", json=entry),
        lambda: api.post("/v1/entries", idempotency_key="k", json=entry),
        lambda: api.post("/v1/entries", key=write, idempotency_key="big", json={
            "postings": [{"account": "equity", "direction": "debit", "amount": 10**6},
                         {"account": "cash", "direction": "credit", "amount": 10**6}]}),
        lambda: api.post("/v1/entries/batch", key=write, json={"entries": [
            {**entry, "idempotency_key": uuid.uuid4().hex}, {"idempotency_key": "bad"}]}),
        lambda: api.get("/v1/accounts", key=read),
        lambda: api.get("/v1/accounts", key=read, query_string={"type": "asset"}),
        lambda: api.get("/v1/accounts/cash", key=read),
        lambda: api.get("/v1/accounts/nobody", key=read),
        lambda: api.get("/v1/accounts/cash/postings", key=read),
        lambda: api.get("/v1/accounts/cash/balance", key=read,
                        query_string={"at": "2030-01-01T00:00:00Z"}),
        lambda: api.get("/v1/entries", key=read, query_string={"status": "posted"}),
        lambda: api.get("/v1/trial-balance", key=read),
        lambda: api.get("/v1/balances", key=read, query_string={"at": "2030-01-01T00:00:00Z"}),
        lambda: api.get("/v1/balances", key=read, query_string={"as_of": "2020-01-01"}),
        lambda: api.get("/healthz"),
        lambda: api.get("/readyz"),
    ]  # fmt: skip
    answers = [call() for call in calls]
    held = api.post("/v1/entries", key=write, idempotency_key=uuid.uuid4().hex, json=hold)
    posted = api.get("/v1/entries", key=read).get_json()["data"][-1]["id"]
    answers += [
        held,
        api.get(f"/v1/entries/{held.get_json()['id']}", key=read),
        api.post(f"/v1/entries/{held.get_json()['id']}/post", key=write,
                 idempotency_key=uuid.uuid4().hex, json={}),
        api.post(f"/v1/entries/{held.get_json()['id']}/void", key=write,
                 idempotency_key=uuid.uuid4().hex, json={}),
        api.post(f"/v1/entries/{posted}/reverse", key=write, idempotency_key=uuid.uuid4().hex,
                 json={}),
    ]  # fmt: skip
    statuses = set()
    for answer in answers:
        request = _replayable(answer.request, getattr(answer, "sent_body", b""))
        spec.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(answer))
        statuses.add(answer.status_code)
    assert {200, 201, 401, 403, 404, 409, 422} <= statuses, statuses


def _replayable(request: Any, body: bytes) -> Any:
    """The request again, with a body that can be read (the function drained the original)."""
    from werkzeug.test import EnvironBuilder

    environ = request.environ
    builder = EnvironBuilder(
        method=request.method, path=request.path, query_string=environ.get("QUERY_STRING", ""),
        headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
        data=body,
    )  # fmt: skip
    return builder.get_request()


@pytest.fixture(scope="module")
def fuzz_ledger(settings) -> Ledger:
    return new_ledger(settings, "fuzz")


def test_generated_requests_get_no_5xx_and_documented_answers(app_settings, fuzz_ledger):
    """schemathesis: every operation (the job routes aside: operator-only), fed generated
    requests, valid and not, with a write key; every answer is checked against the document
    (status, content type, schema, headers) and none may be a 5xx; at least 1,000 are sent."""
    app = create_app(app_settings)
    client = app.test_client()
    for code, type_ in (("cash", "asset"), ("equity", "equity")):
        client.post("/v1/accounts", headers=fuzz_ledger.write, json={
            "code": code, "name": code, "type": type_, "currency": "USD",
            "allow_negative": True})  # fmt: skip
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [
        result.ok() for result in schema.exclude(tag="jobs").exclude(path="/openapi.json")
        .get_all_operations()
    ]  # fmt: skip
    assert len(operations) >= 15, [op.label for op in operations]
    auth = {"Authorization": f"Bearer {fuzz_ledger.write_key}"}
    sent: list[int] = []  # the status of every generated request, over all operations
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=GENERATED_PER_OPERATION, deadline=None,
                             suppress_health_check=list(hypothesis.HealthCheck),
                             database=None)  # fmt: skip
        def run(case: Any) -> None:
            # Schema-valid is not ledger-valid (an account that does not exist, funds, a key
            # already used, text PostgreSQL cannot store): those are documented 4xx answers.
            response = case.call_and_validate(headers=auth, excluded_checks=[NOT_BUSINESS_RULES])
            sent.append(response.status_code)

        run()
    assert len(sent) >= 1000, f"sent {len(sent)} generated requests"
    assert all(status < 500 for status in sent)
    print(f"\nSCHEMATHESIS requests={len(sent)} statuses={sorted(set(sent))}")
