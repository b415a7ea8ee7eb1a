"""Traces through the real functions (issue 19, item 6): a request span with a child span per
engine call, the incoming trace continued, and log lines inside a request that name it."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from arus.outbox.relay import run_once
from arus.platform import logs
from arus.platform.logs import JsonFormatter
from arus.web.app import create_app
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.batches import post_batch, transfer
from tests.support.ledgers import Api, Ledger

PROJECT = "arus-test-project"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def _provider() -> None:
    """An SDK provider for the process (OpenTelemetry takes one), recording into _EXPORTER."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans(_provider: None) -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


class JsonLines(logging.Handler):
    """Every record as the deployed functions write it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(JsonFormatter().format(record)))


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[JsonLines]:
    monkeypatch.setattr(logs, "_trace_project", PROJECT)
    handler = JsonLines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def _books(api: Api, ledger: Ledger) -> None:
    api.account(ledger, "cash", "asset")
    api.account(ledger, "equity", "equity", allow_negative=True)


def _entry(debit: str, credit: str, amount: int) -> dict[str, object]:
    item = transfer(debit, credit, amount)
    return {"postings": item["postings"]}


def _named(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.name == name]
    return span


def test_a_request_has_a_request_span_with_a_child_engine_span(api, ledger, spans):
    _books(api, ledger)
    spans.clear()
    response = api.post(
        "/v1/entries",
        key=ledger.write_key,
        idempotency_key=uuid.uuid4().hex,
        json=_entry("cash", "equity", 500),
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 201, response.get_json()
    request_span = _named(spans, "POST /v1/entries")
    engine_span = _named(spans, "arus_post_entry")
    assert request_span.kind == trace.SpanKind.SERVER
    assert request_span.attributes["http.response.status_code"] == 201
    # The request continues the caller's trace; the engine call is its child.
    assert format(request_span.context.trace_id, "032x") == TRACE_ID
    assert format(request_span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert engine_span.parent.span_id == request_span.context.span_id
    assert engine_span.context.trace_id == request_span.context.trace_id
    assert engine_span.attributes["arus.entries_written"] == 1
    assert engine_span.attributes["db.operation.name"] == "arus_post_entry"
    # Never a secret or a body: the key's public id is the only thing from the request.
    key_id = ledger.credentials.key_id
    assert engine_span.attributes["arus.key_id"] == key_id
    recorded = json.dumps([dict(s.attributes) for s in spans.get_finished_spans()])
    assert ledger.write_key.split("_")[-1] not in recorded and "cash" not in recorded


def test_a_log_line_inside_a_request_names_the_incoming_trace(api, ledger, spans, json_lines):
    _books(api, ledger)
    spans.clear()
    json_lines.lines.clear()
    response = api.post(
        "/v1/entries",
        key=ledger.write_key,
        idempotency_key=uuid.uuid4().hex,
        json=_entry("cash", "equity", 700),
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 201, response.get_json()
    (line,) = [line for line in json_lines.lines if line["message"] == "engine call"]
    engine_span = _named(spans, "arus_post_entry")
    assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert line["logging.googleapis.com/spanId"] == format(engine_span.context.span_id, "016x")
    assert line["logging.googleapis.com/trace_sampled"] is True
    assert line["engine_call"]["function"] == "arus_post_entry"
    assert line["engine_call"]["entries_written"] == 1 and line["engine_call"]["error"] is None


def test_cloud_runs_trace_header_is_continued(api, ledger, spans):
    response = api.post(
        "/v1/accounts",
        key=ledger.write_key,
        json={"code": "cash", "name": "Cash", "type": "asset", "currency": "USD"},
        headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"},
    )
    assert response.status_code == 201, response.get_json()
    request_span = _named(spans, "POST /v1/accounts")
    assert format(request_span.context.trace_id, "032x") == TRACE_ID
    assert request_span.parent.span_id == 1
    assert _named(spans, "arus_create_account").attributes["arus.entries_written"] == 0


def test_a_line_outside_any_span_has_no_trace_fields(json_lines):
    logging.getLogger("arus.test").info("no request here")
    (line,) = [line for line in json_lines.lines if line["message"] == "no request here"]
    assert not any(key.startswith("logging.googleapis.com/") for key in line)


def test_the_engine_line_counts_a_batchs_entries_and_a_refusal_writes_none(
    api, ledger, spans, json_lines
):
    _books(api, ledger)
    json_lines.lines.clear()
    entries = [transfer("cash", "equity", 1) for _ in range(3)]
    replayed = entries[0]
    assert post_batch(api, ledger, entries).status_code == 200
    assert post_batch(api, ledger, [replayed, transfer("cash", "equity", 2)]).status_code == 200
    refused = api.post(
        "/v1/entries",
        key=ledger.write_key,
        idempotency_key=uuid.uuid4().hex,
        json=_entry("wallet-that-does-not-exist", "equity", 1),
    )
    assert refused.status_code >= 400
    calls = [line["engine_call"] for line in json_lines.lines if line["message"] == "engine call"]
    assert [(c["function"], c["entries_written"]) for c in calls] == [
        ("arus_post_batch", 3),
        ("arus_post_batch", 1),  # the replayed item wrote nothing again
        ("arus_post_entry", 0),
    ], calls
    assert calls[-1]["error"] is not None
    refusal = _named(spans, "arus_post_entry")
    assert refusal.attributes["error.type"] == calls[-1]["error"]


def test_an_app_made_in_code_traces_its_routes_too(app_settings, ledger, spans):
    """`arus serve` dispatches through Flask itself, not serve_function: the same spans."""
    client = create_app(app_settings, surfaces=("reads",)).test_client()
    response = client.get(
        "/v1/accounts",
        headers={"Authorization": f"Bearer {ledger.read_key}", "traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.get_json()
    request_span = _named(spans, "GET /v1/accounts")
    assert format(request_span.context.trace_id, "032x") == TRACE_ID
    assert request_span.attributes["http.route"] == "/v1/accounts"


def test_a_scheduled_relay_run_logs_the_outbox_lag_and_events_published(
    api, ledger, app_settings, json_lines
):
    """What the outbox-lag metric reads (terraform/modules/monitoring): one INFO line per run,
    idle or not, with flat fields that are never null."""
    _books(api, ledger)  # two account.created events to publish
    first = run_once(app_settings)
    idle = run_once(app_settings)
    lines = [line for line in json_lines.lines if line["message"] == "relay run"]
    assert [line["severity"] for line in lines] == ["INFO", "INFO"], lines
    assert [line["events_published"] for line in lines] == [first.published, 0]
    assert first.published >= 2 and idle.published == 0
    assert lines[1]["outbox_lag_s"] == 0.0  # nothing is left unpublished
    assert all(isinstance(line["outbox_lag_s"], float) for line in lines)
