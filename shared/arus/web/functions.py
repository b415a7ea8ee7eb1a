"""The four functions' adapters: functions-framework requests answered by one app per surface."""

from __future__ import annotations

import threading

from flask import Flask, Request, Response

from arus.platform import logs
from arus.platform.config import load_settings
from arus.web.app import create_app, error_response


def serve_function(app: Flask, incoming: Request) -> Response:
    """Answer a functions-framework request with `app`'s routes and error answers.

    The route runs in the request context functions-framework has already pushed (its
    `request` is this request): no second app is dispatched and the body is not copied.
    """
    incoming.max_content_length = app.config["MAX_CONTENT_LENGTH"]
    try:
        adapter = app.url_map.bind_to_environ(incoming.environ)
        rule, args = adapter.match(return_rule=True)
        if incoming.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
            return Response(status=200, headers={"Allow": ", ".join(adapter.allowed_methods())})
        response = app.view_functions[rule.endpoint](**args)
        assert isinstance(response, Response), "every route answers with a Response"
        return response
    except Exception as exc:  # noqa: BLE001 - every failure gets its API answer, as in the app
        return error_response(exc)
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
