"""WSGI entry point for running Arus under a server of your own, for example
`gunicorn -k arus.web.serving.WaitressWorker arus.web.wsgi:app` (what `arus serve --workers N`
runs) or `loadtest/bracket.py --server gthread`.

The same app `arus serve` runs (every function's routes), configured once from the
environment. Each gunicorn worker imports this module after the fork, so each gets its own
database engines.
"""

from __future__ import annotations

from arus.platform import logs
from arus.platform.config import load_settings
from arus.web.app import create_app

_settings = load_settings()
logs.configure(log_format=_settings.log_format, level=_settings.log_level)

app = create_app(_settings)
