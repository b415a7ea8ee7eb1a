"""Traces: a span per request and one per posting-engine call, continuing the trace the request
came with (W3C `traceparent`, or Cloud Run's `X-Cloud-Trace-Context`). See ADR-010.

`instrument(app, settings)` is the one hook `create_app` calls: it configures the process's
tracer provider once, from ARUS_TRACE_EXPORTER (`none`: no provider, `console`: standard error,
`gcp`: Cloud Trace), and wraps every view of the app in a request span. It wraps the views, not
Flask's request hooks, because the functions on Google Cloud call the views directly inside
functions-framework's own request (web/functions.py, serve_function), where those hooks never
run. `engine_call` wraps gateway.call_engine: a span named after the SQL function, and one
`engine call` log line with the entries the call wrote, which the log-based metric counts
(terraform/modules/monitoring).

Spans and lines carry names, the key's public id, counts, status and error codes and
durations: never a secret, a body, a header's value or an exception's message.

With `none` no SDK provider is installed: OpenTelemetry's no-op tracer records nothing but
still makes the incoming trace current, so log lines still carry Cloud Run's trace (logs.py).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import sqlalchemy as sa
from flask import Flask, Response, request
from opentelemetry import trace
from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Engine

from arus.errors import ArusError
from arus.platform import logs
from arus.platform.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("arus.platform.telemetry")
tracer = trace.get_tracer("arus")  # a proxy: spans go to whichever provider is installed

# Cloud Run passes both headers; the W3C one is extracted last, so it wins when both are there.
PROPAGATOR = CompositePropagator([CloudTraceFormatPropagator(), TraceContextTextMapPropagator()])
_TRACE_HEADERS = ("X-Cloud-Trace-Context", "traceparent", "tracestate")

# The engine's functions that write entries (ledger/sql/posting.sql): a single call wrote one
# when it answered 201 (a replay answers 200); a batch wrote one per item answered 201.
_ENTRY_WRITERS = frozenset({"arus_post_entry", "arus_reverse_entry", "arus_post_pending"})
_BATCH_WRITER = "arus_post_batch"
_SQL_FUNCTION = re.compile(r"\bSELECT\s+(\w+)\s*\(", re.IGNORECASE)

_configured = False
_configure_lock = threading.Lock()

P = ParamSpec("P")


def make_exporter(settings: Settings) -> SpanExporter | None:
    """Where the settings send spans; None for `none`."""
    if settings.trace_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # standard output is the CLI's JSON
    if settings.trace_exporter == "gcp":
        from opentelemetry.exporter import cloud_trace

        # With no project set, the exporter takes the default credentials' project. (The
        # package has no type hints: its class is called as what it is to mypy, Any.)
        cloud_trace_exporter: Any = cloud_trace.CloudTraceSpanExporter
        exporter: SpanExporter = cloud_trace_exporter(project_id=settings.trace_project)
        return exporter
    assert settings.trace_exporter == "none", settings.trace_exporter
    return None


def configure(settings: Settings) -> None:
    """Install the tracer provider the settings ask for, once per process: the first app's
    settings decide (OpenTelemetry takes one global provider)."""
    global _configured
    with _configure_lock:
        if _configured:
            return
        _configured = True
        exporter = make_exporter(settings)
        project = settings.trace_project or getattr(exporter, "project_id", None)
        logs.use_trace_project(project)
        if exporter is None:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The default sampler follows the caller's decision (Cloud Run's header), else samples.
        provider = TracerProvider(resource=Resource.create({"service.name": "arus"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))  # exports off the request
        trace.set_tracer_provider(provider)


def instrument(app: Flask, settings: Settings) -> None:
    """Configure tracing (once per process) and put every view of `app` in a request span.
    Call it once every route is registered."""
    configure(settings)
    routes: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        routes.setdefault(rule.endpoint, rule.rule)
    for endpoint, view in list(app.view_functions.items()):
        app.view_functions[endpoint] = _traced_view(view, routes.get(endpoint, endpoint))


def _trace_headers() -> dict[str, str]:
    """The request's trace headers alone: the propagators search their carrier's keys without
    regard to case, which over every header of a request costs more than the rest of a span."""
    return {name: value for name in _TRACE_HEADERS if (value := request.headers.get(name))}


def _exporting() -> bool:
    """Whether spans go anywhere: a tracer provider was installed (configure, or a test's)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _traced_view(view: Callable[..., Any], route: str) -> Callable[..., Any]:
    @functools.wraps(view)
    def traced(**path_params: Any) -> Any:
        headers = _trace_headers()
        if not headers and not _exporting():
            # No trace to continue and nowhere to send one: a span would be the invalid span,
            # and cost ~60 µs a request for nothing (ADR-010).
            return view(**path_params)
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
            record_exception=False,  # an exception's message may quote a request
            set_status_on_exception=False,
        ) as span:
            try:
                response = view(**path_params)
            except ArusError as exc:
                span.set_attributes(
                    {"http.response.status_code": exc.status, "error.type": exc.code}
                )
                if exc.status >= 500:
                    span.set_status(StatusCode.ERROR)
                raise
            except Exception as exc:  # answered by error_response; the span only notes it
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(StatusCode.ERROR)
                raise
            if isinstance(response, Response):
                span.set_attribute("http.response.status_code", response.status_code)
            return response

    return traced


def sql_function(statement: sa.TextClause) -> str:
    """The SQL function an engine statement calls (`SELECT arus_post_entry(...)`)."""
    return _function_called(statement.text)


@functools.cache  # the engine's statements are a handful of module constants
def _function_called(text: str) -> str:
    found = _SQL_FUNCTION.search(text)
    assert found, f"not a call of one function: {text[:60]!r}"
    return found.group(1)


def entries_written(function: str, outcome: Any) -> int:
    """How many entries an engine call's outcome says it wrote (none for a replay or refusal)."""
    if function == _BATCH_WRITER:
        return sum(1 for result in outcome["results"] if result.get("status") == 201)
    if function in _ENTRY_WRITERS:
        return int(outcome["status"] == 201 and not outcome["replayed"])
    return 0


def engine_call(
    call: Callable[Concatenate[Engine, sa.TextClause, dict[str, Any], P], Any],
) -> Callable[Concatenate[Engine, sa.TextClause, dict[str, Any], P], Any]:
    """Wrap gateway.call_engine: one span per call (its retries inside it), named after the
    SQL function, and one `engine call` log line with the entries it wrote and its error code."""

    @functools.wraps(call)
    def traced(
        engine: Engine, statement: sa.TextClause, params: dict[str, Any], /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> Any:  # fmt: skip
        function = sql_function(statement)
        started = time.perf_counter()
        entries, error = 0, None
        in_trace = trace.get_current_span().get_span_context().is_valid or _exporting()
        opened = tracer.start_as_current_span(
            function,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": function,
                "arus.key_id": str(params.get("key_id")),  # the key's public id, never its secret
            },
            record_exception=False,
            set_status_on_exception=False,
        ) if in_trace else nullcontext(trace.INVALID_SPAN)  # fmt: skip
        with opened as span:
            try:
                outcome = call(engine, statement, params, *args, **kwargs)
                entries = entries_written(function, outcome)
                return outcome
            except ArusError as exc:
                error = exc.code
                raise
            except Exception as exc:
                error = type(exc).__name__
                span.set_status(StatusCode.ERROR)
                raise
            finally:
                span.set_attribute("arus.entries_written", entries)
                if error is not None:
                    span.set_attribute("error.type", error)
                duration_ms = round((time.perf_counter() - started) * 1000, 3)
                log.info(
                    "engine call",
                    extra={"engine_call": {"function": function, "entries_written": entries,
                                           "error": error, "duration_ms": duration_ms}},
                )  # fmt: skip

    return traced
