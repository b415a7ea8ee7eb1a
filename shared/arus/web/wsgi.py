"""WSGI entry point for a multi-process server: `gunicorn arus.web.wsgi:app`.

The same app `arus serve` runs (every function's routes), configured once from the
environment. Each gunicorn worker imports this module after the fork, so each gets its own
database engines. The load test (loadtest/bracket.py) serves Arus this way.
"""

from __future__ import annotations

from arus.platform import logs
from arus.platform.config import load_settings
from arus.web.app import create_app

_settings = load_settings()
logs.configure(log_format=_settings.log_format, level=_settings.log_level)

app = create_app(_settings)
