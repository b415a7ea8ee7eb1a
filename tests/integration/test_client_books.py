"""arus_client's rollup and statement calls against the real app (in process, over httpx's WSGI
transport), and the answers of both routes validated against the OpenAPI document."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import httpx
import pytest
from arus.ledger.commands import today_utc
from arus.web import openapi
from arus.web.app import create_app
from arus_client.client import ArusClient, NewPosting, NotFoundError, ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

TODAY = today_utc()


@pytest.fixture
def app(app_settings):
    return create_app(app_settings)


@pytest.fixture
def arus(app, ledger):
    transport = httpx.WSGITransport(app=app)
    with ArusClient("http://arus.test", ledger.write_key, transport=transport) as client:
        client.create_account(code="wallet:ana", name="Ana", type="liability", currency="USD",
                              allow_negative=True)  # fmt: skip
        client.create_account(code="wallet:bo", name="Bo", type="liability", currency="USD",
                              allow_negative=True)  # fmt: skip
        client.create_account(code="bank", name="Bank", type="asset", currency="USD",
                              allow_negative=True)  # fmt: skip
        for wallet, amount, days_ago in (("wallet:ana", 50, 3), ("wallet:bo", 20, 1),
                                         ("wallet:ana", 5, 2)):  # fmt: skip
            client.post_entry(
                [NewPosting("bank", "debit", amount), NewPosting(wallet, "credit", amount)],
                effective_date=TODAY - dt.timedelta(days=days_ago),
                description=f"top-up {wallet}",
            )
        yield client


def test_the_client_rolls_up_a_prefix(arus):
    rollup = arus.rollup("wallet:")
    assert rollup.prefix == "wallet:" and rollup.accounts == 2
    assert [(t.currency, t.debit, t.credit) for t in rollup.totals] == [("USD", 0, 75)]
    later = arus.rollup("wallet:", at=dt.datetime.now(dt.UTC))
    assert later.totals == rollup.totals
    assert arus.rollup("nobody").totals == []
    with pytest.raises(NotFoundError):
        arus.rollup("wallet:", as_of=TODAY - dt.timedelta(days=1))
    with pytest.raises(ValidationError):
        arus.rollup("wallet:", at="2026-01-01T00:00:00Z", as_of="2026-01-01")


def test_the_client_reads_a_statement_by_pages_json_and_csv(arus):
    start, end = TODAY - dt.timedelta(days=3), TODAY
    whole = arus.statement("wallet:ana", start, end)
    assert whole.opening_balance == 0 and whole.closing_balance == 55
    assert [(line.amount, line.balance) for line in whole.lines] == [(50, 50), (5, 55)]
    assert whole.lines[0].description == "top-up wallet:ana"
    assert list(arus.iter_statement_lines("wallet:ana", start, end, page_size=1)) == whole.lines
    first = arus.statement_csv("wallet:ana", start, end, limit=1)
    assert first.next_cursor is not None and first.closing_balance == 55
    rest = arus.statement_csv("wallet:ana", start, end, limit=1, cursor=first.next_cursor)
    assert rest.next_cursor is None
    rows = [*csv.DictReader(io.StringIO(first.text)), *csv.DictReader(io.StringIO(rest.text))]
    assert [int(row["balance"]) for row in rows] == [50, 55]
    with pytest.raises(ValidationError):
        arus.statement("wallet:ana", end, start)
    with pytest.raises(NotFoundError):
        arus.statement("nobody", start, end)


def test_rollup_and_statement_answers_conform_to_the_document(app, arus, ledger):
    # openapi-core reads a text/csv body as bytes unless told it is text.
    text = Config(extra_media_type_deserializers={"text/csv": lambda body, **_: body.decode()})
    spec = OpenAPI.from_dict(openapi.document(), config=text)
    client = app.test_client()
    start, end = (TODAY - dt.timedelta(days=3)).isoformat(), TODAY.isoformat()
    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/v1/rollups", {"prefix": "wallet:"}, {}),
        ("/v1/rollups", {"prefix": "wallet:", "at": "2030-01-01T00:00:00Z"}, {}),
        ("/v1/rollups", {"prefix": "wallet:", "as_of": "2020-01-01"}, {}),
        ("/v1/rollups", {"prefix": "wallet%"}, {}),
        ("/v1/accounts/wallet:ana/statement", {"from": start, "to": end, "limit": 1}, {}),
        ("/v1/accounts/wallet:ana/statement", {"from": start, "to": end, "limit": 1},
         {"Accept": "text/csv"}),
        ("/v1/accounts/wallet:ana/statement", {"from": end, "to": start}, {}),
        ("/v1/accounts/nobody/statement", {"from": start, "to": end}, {}),
    ]  # fmt: skip
    statuses = set()
    for path, query, headers in calls:
        answer = client.get(path, query_string=query,
                            headers={**ledger.read, **headers})  # fmt: skip
        spec.validate_response(
            WerkzeugOpenAPIRequest(answer.request), WerkzeugOpenAPIResponse(answer)
        )
        statuses.add((answer.status_code, answer.mimetype))
    assert statuses == {(200, "application/json"), (200, "text/csv"),
                        (404, "application/json"), (422, "application/json")}  # fmt: skip
