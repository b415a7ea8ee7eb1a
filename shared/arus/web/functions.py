"""The four functions' adapters: functions-framework requests answered by one app per surface."""

from __future__ import annotations

import threading

from flask import Flask, Request, Response
from flask.ctx import RequestContext

from arus.platform import logs
from arus.platform.config import load_settings
from arus.web.app import create_app


def serve_function(app: Flask, incoming: Request) -> Response:
    """Answer a functions-framework request with `app`: Flask's own dispatch (routing, automatic
    OPTIONS, the error handlers), so a function answers exactly as `arus serve` does.

    The context is `app`'s, around the request functions-framework has already made: one
    request object over one body stream, so the body functions-framework drains after the
    response is the rest of the one the route read, never a second read of a spent stream.
    """
    incoming.max_content_length = app.config["MAX_CONTENT_LENGTH"]
    try:
        with RequestContext(app, incoming.environ, request=incoming):
            return app.full_dispatch_request()
    finally:
        # functions-framework drains the body after the response: past the limit, it must
        # not raise there.
        incoming.max_content_length = None


_apps: dict[str, Flask] = {}
_apps_lock = threading.Lock()


def _app_for(surface: str) -> Flask:
    with _apps_lock:
        if surface not in _apps:
            settings = load_settings()
            logs.configure(log_format=settings.log_format, level=settings.log_level)
            # On Google Cloud, IAM lets only the scheduler invoke the job functions.
            _apps[surface] = create_app(settings, surfaces=(surface,), jobs_gate="iam")
        return _apps[surface]


def post_entry_app(incoming: Request) -> Response:
    return serve_function(_app_for("mutations"), incoming)


def query_app(incoming: Request) -> Response:
    return serve_function(_app_for("reads"), incoming)


def relay_app(incoming: Request) -> Response:
    return serve_function(_app_for("relay"), incoming)


def daily_close_app(incoming: Request) -> Response:
    return serve_function(_app_for("close"), incoming)
