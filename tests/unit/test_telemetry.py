"""Telemetry's settings, its exporters and what a log line says about the current span
(issue 19, item 6). Spans through the real app: tests/integration/test_telemetry.py."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from arus.ledger import gateway
from arus.platform import logs, telemetry
from arus.platform.config import ConfigError, Settings, load_settings
from arus.platform.logs import JsonFormatter
from opentelemetry import trace
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def test_a_trace_exporter_written_wrong_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"ARUS_TRACE_EXPORTER: .*'gpc'"):
        load_settings({"ARUS_TRACE_EXPORTER": "gpc"})


def test_a_trace_project_that_is_no_project_id_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError, match="ARUS_TRACE_PROJECT"):
        load_settings({"ARUS_TRACE_PROJECT": "Not A Project"})


def test_traces_go_nowhere_unless_asked():
    assert load_settings({}).trace_exporter == "none"
    assert telemetry.make_exporter(Settings()) is None
    settings = load_settings({"ARUS_TRACE_EXPORTER": "console"})
    assert isinstance(telemetry.make_exporter(settings), ConsoleSpanExporter)


def test_the_gcp_exporter_writes_to_the_project_set(monkeypatch):
    from opentelemetry.exporter import cloud_trace

    made: list[str | None] = []
    monkeypatch.setattr(
        cloud_trace, "CloudTraceSpanExporter", lambda project_id: made.append(project_id)
    )
    telemetry.make_exporter(Settings(trace_exporter="gcp", trace_project="arus-prod-1"))
    assert made == ["arus-prod-1"]


def _line_in_span(project: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setattr(logs, "_trace_project", project)
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1))
    record = logging.getLogger("arus.test").makeRecord(
        "arus.test", logging.INFO, __file__, 1, "inside", None, None
    )
    with trace.use_span(NonRecordingSpan(context)):
        return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def test_a_json_line_in_a_span_carries_cloud_loggings_trace_fields(monkeypatch):
    line = _line_in_span("arus-prod-1", monkeypatch)
    assert line["logging.googleapis.com/trace"] == (
        "projects/arus-prod-1/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert line["logging.googleapis.com/trace_sampled"] is True
    # With no project known (locally), the bare trace id.
    bare = _line_in_span(None, monkeypatch)
    assert bare["logging.googleapis.com/trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_every_engine_statement_names_its_sql_function():
    statements = {
        name: value for name, value in vars(gateway).items() if isinstance(value, sa.TextClause)
    }
    names = {telemetry.sql_function(statement) for statement in statements.values()}
    assert {"arus_post_entry", "arus_post_batch", "arus_create_account"} <= names, names
    assert all(name.startswith("arus_") for name in names), names


@pytest.mark.parametrize(
    ("function", "outcome", "written"),
    [
        ("arus_post_entry", {"status": 201, "replayed": False}, 1),
        ("arus_post_entry", {"status": 200, "replayed": True}, 0),
        ("arus_reverse_entry", {"status": 201, "replayed": False}, 1),
        ("arus_post_pending", {"status": 201, "replayed": False}, 1),
        ("arus_create_account", {"status": 201, "replayed": False}, 0),
        ("arus_void_pending", {"status": 200, "replayed": False}, 0),
        (
            "arus_post_batch",
            {"results": [{"status": 201}, {"status": 200}, {"status": 422}, {"status": 201}]},
            2,
        ),
    ],
)
def test_entries_written_counts_only_new_entries(function, outcome, written):
    assert telemetry.entries_written(function, outcome) == written
