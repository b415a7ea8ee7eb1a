"""HTTP: one Flask routing layer for every function (SPEC §3).

`post_entry_app`, `query_app`, `relay_app` and `daily_close_app` are what the functions'
main.py files call; `create_app` with every surface is what `arus serve` runs. Job routes
carry no API key: on Google Cloud only the scheduler's service account may invoke those
functions (IAM, OIDC); locally `arus serve` binds to 127.0.0.1. Handlers only
parse, authenticate, call a use case and render; errors are domain exceptions turned into
`{"error": {code, message}}` in one place.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Request, Response, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from arus import domain, posting, queries
from arus.auth import Caller, Credentials, authorize, parse_credentials
from arus.errors import (
    ArusError,
    InvalidJson,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from arus.platform import logs
from arus.platform.config import Settings, load_settings
from arus.platform.db import get_engine

log = logging.getLogger("arus.http")

SURFACES = ("mutations", "reads", "relay", "close")

# The mutation routes. A request's idempotency fingerprint names its route (`operation`), so a
# key retried on another route is a conflict; a batch item is the same request as a POST to
# ENTRIES_ROUTE with the same body.
ACCOUNTS_ROUTE = "/v1/accounts"
ENTRIES_ROUTE = "/v1/entries"
BATCH_ROUTE = "/v1/entries/batch"
REVERSE_ROUTE = "/v1/entries/<entry_id>/reverse"


def operation(route: str, **ids: object) -> str:
    """`POST <route>` with its ids filled in (canonical forms): what a fingerprint names."""
    path = route
    for name, value in ids.items():
        path = path.replace(f"<{name}>", str(value))
    assert "<" not in path, f"{route} needs its ids"
    return f"POST {path}"


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
JSON_MIMETYPE = "application/json"


class _Ledger:
    """Per-app resources, created on first request (never at import: cold starts stay cheap)."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    @property
    def jobs_engine(self) -> Engine:
        """Transactions for the relay and the close (not on the request path)."""
        return get_engine(self.settings)

    @property
    def engine(self) -> Engine:
        """The request path's one pool: every statement its own transaction, one round trip."""
        return get_engine(self.settings, autocommit=True)


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        mimetype=JSON_MIMETYPE,
        headers=headers,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


MAX_JSON_DEPTH = 32


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def check_json_values(value: object, *, depth: int = 0, path: str = "body") -> None:
    """Refuse what PostgreSQL or the encoder cannot store: deep nesting, NUL, lone surrogates."""
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"{path} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValidationError(f"{path} contains a NUL character or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_values(key, depth=depth + 1, path=f"{path} key")
            check_json_values(item, depth=depth + 1, path=f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_values(item, depth=depth + 1, path=f"{path}[{index}]")


def read_json_body(*, required: bool, max_bytes: int | None = None) -> object:
    """The request's JSON body, strictly: JSON content type, size limit, no NaN or infinite
    numbers, no duplicate keys, bounded nesting, only text PostgreSQL can store."""
    raw = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH: 413 past the limit
    if max_bytes is not None and len(raw) > max_bytes:
        raise PayloadTooLarge(f"the request body exceeds the size limit of {max_bytes} bytes")
    if not raw and not required:
        return {}
    if request.mimetype != JSON_MIMETYPE:
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    if not raw:
        raise InvalidJson("the request body is empty; a JSON object is required")
    try:
        body = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicate_keys,
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None
    check_json_values(body)
    return body


def _credentials() -> Credentials:
    return parse_credentials(request.headers.get("Authorization"))


def _authorized_parse(ledger: _Ledger, credentials: Credentials, parse: Callable[[], Any]) -> Any:
    """Parse a mutation's request; when it fails, answer 401/403 first if that is the truth.

    Success costs no extra round trip (the engine call authorises); only a refused request
    asks the database who is calling, so the answer's precedence is as if it had asked first.
    """
    try:
        return parse()
    except ArusError:
        with ledger.engine.connect() as conn:
            authorize(conn, credentials, scope="write")
        raise


def _mutation_response(result: posting.MutationResult, location: str) -> Response:
    headers = {"Location": location}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json_response(result.body, result.status, headers)


def _register_mutations(app: Flask, ledger: _Ledger) -> None:
    limits = ledger.settings

    @app.post(ACCOUNTS_ROUTE)
    def create_account() -> Response:
        credentials = _credentials()

        def parse() -> tuple[object, domain.NewAccount, str | None]:
            body = read_json_body(required=True, max_bytes=limits.max_body_bytes)
            key = request.headers.get("Idempotency-Key")
            if key == "":
                raise ValidationError(
                    "Idempotency-Key, when sent, must be 1-255 printable characters"
                )
            parsed_key = None if key is None else domain.parse_idempotency_key(key)
            return body, domain.parse_new_account(body), parsed_key

        body, account, key = _authorized_parse(ledger, credentials, parse)
        result = posting.create_account(
            ledger.engine,
            credentials=credentials,
            account=account,
            idempotency_key=key,
            request_body=body,
            operation=operation(ACCOUNTS_ROUTE),
        )
        return _mutation_response(result, f"/v1/accounts/{result.body['id']}")

    @app.post(ENTRIES_ROUTE)
    def create_entry() -> Response:
        credentials = _credentials()

        def parse() -> tuple[str, object, domain.NewEntry]:
            key = domain.parse_idempotency_key(request.headers.get("Idempotency-Key"))
            body = read_json_body(required=True, max_bytes=limits.max_body_bytes)
            return key, body, domain.parse_new_entry(body)

        key, body, entry = _authorized_parse(ledger, credentials, parse)
        result = posting.post_entry(
            ledger.engine,
            credentials=credentials,
            entry=entry,
            idempotency_key=key,
            request_body=body,
            operation=operation(ENTRIES_ROUTE),
        )
        return _mutation_response(result, f"/v1/entries/{result.body['id']}")

    @app.post(BATCH_ROUTE)
    def create_batch() -> Response:
        credentials = _credentials()
        batch = _authorized_parse(
            ledger,
            credentials,
            lambda: domain.parse_batch(
                read_json_body(required=True, max_bytes=limits.max_batch_body_bytes)
            ),
        )
        results = posting.post_batch(
            ledger.engine,
            credentials=credentials,
            batch=batch,
            item_operation=operation(ENTRIES_ROUTE),
        )
        return _json_response({"results": results}, 200)

    @app.post(REVERSE_ROUTE)
    def reverse_entry(entry_id: str) -> Response:
        credentials = _credentials()

        def parse() -> tuple[str, object, domain.Reversal]:
            parsed_id = domain.parse_object_id(entry_id)
            if parsed_id is None:
                raise NotFound(f"no entry {entry_id}")
            key = domain.parse_idempotency_key(request.headers.get("Idempotency-Key"))
            body = read_json_body(required=False, max_bytes=limits.max_body_bytes)
            return key, body, domain.parse_reversal(parsed_id, body)

        key, body, reversal = _authorized_parse(ledger, credentials, parse)
        result = posting.reverse_entry(
            ledger.engine,
            credentials=credentials,
            reversal=reversal,
            idempotency_key=key,
            request_body=body,
            operation=operation(REVERSE_ROUTE, entry_id=reversal.entry_id),
        )
        return _mutation_response(result, f"/v1/entries/{result.body['id']}")


def _register_reads(app: Flask, ledger: _Ledger) -> None:
    def read(use_case: Callable[..., Any], *args: Any, paged: bool = False) -> Response:
        """One round trip: the use case's statement carries the key check (auth.Caller)."""
        caller = Caller(_credentials(), "read")
        with ledger.engine.connect() as conn:
            try:
                if paged:
                    limit = queries.parse_limit(request.args.get("limit"))
                    cursor = request.args.get("cursor")
                    result = use_case(caller, conn, *args, limit=limit, cursor=cursor)
                else:
                    result = use_case(caller, conn, *args)
            except ValidationError:
                # Refused before its statement ran: a bad key still answers 401/403 first.
                caller.check(conn)
                raise
        body = result.to_json() if isinstance(result, queries.Page) else result
        return _json_response(body, 200)

    @app.get("/v1/accounts")
    def list_accounts() -> Response:
        return read(queries.list_accounts, paged=True)

    @app.get("/v1/accounts/<ref>")
    def get_account(ref: str) -> Response:
        return read(queries.get_account, ref)

    @app.get("/v1/accounts/<ref>/postings")
    def account_postings(ref: str) -> Response:
        return read(queries.account_postings, ref, paged=True)

    @app.get("/v1/entries")
    def list_entries() -> Response:
        return read(queries.list_entries, paged=True)

    @app.get("/v1/entries/<entry_id>")
    def get_entry(entry_id: str) -> Response:
        return read(queries.get_entry, domain.parse_object_id(entry_id))

    @app.get("/v1/trial-balance")
    def trial_balance() -> Response:
        return read(queries.trial_balance)

    @app.get("/v1/balances")
    def balances_as_of() -> Response:
        return read(queries.balances_as_of, request.args.get("as_of"), paged=True)


def _register_relay(app: Flask, ledger: _Ledger, *, at_root: bool) -> None:
    """`POST /jobs/relay`: one relay run (Cloud Scheduler calls it every minute with OIDC)."""

    def run_relay() -> Response:
        from arus.outbox import relay

        outcome = relay.run_once(ledger.settings)
        if outcome.error is not None:
            return _json_response(
                {"error": {"code": "relay_failed", "message": outcome.error}, **outcome.to_json()},
                503,
            )
        return _json_response(outcome.to_json(), 200)

    app.add_url_rule("/jobs/relay", "relay", run_relay, methods=["POST"])
    if at_root:
        app.add_url_rule("/", "relay_root", run_relay, methods=["POST"])


def _register_close(app: Flask, ledger: _Ledger, *, at_root: bool) -> None:
    """`POST /jobs/daily-close` with optional `{"date": "YYYY-MM-DD"}` (default yesterday)."""

    def run_close() -> Response:
        from arus.jobs import close

        body = read_json_body(required=False, max_bytes=ledger.settings.max_body_bytes)
        if not isinstance(body, dict) or set(body) - {"date"}:
            raise ValidationError('the body is {"date": "YYYY-MM-DD"} or empty')
        day = domain.parse_as_of(body["date"], field="date") if "date" in body else None
        reports = close.close_all(ledger.settings, day)
        failed = [r for r in reports if not r["ok"]]
        if failed:
            message = f"{len(failed)} ledger(s) did not close: imbalance or drift"
            return _json_response(
                {"error": {"code": "close_failed", "message": message}, "closes": reports}, 500
            )
        return _json_response({"closes": reports}, 200)

    app.add_url_rule("/jobs/daily-close", "daily_close", run_close, methods=["POST"])
    if at_root:
        app.add_url_rule("/", "daily_close_root", run_close, methods=["POST"])


def error_response(exc: Exception) -> Response:
    """The answer to any exception a route raises: the API error body, never a traceback."""
    if isinstance(exc, ArusError):
        return _json_response(exc.to_json(), exc.status)
    if isinstance(exc, HTTPException):
        mapped: ArusError
        if isinstance(exc, RequestEntityTooLarge):
            mapped = PayloadTooLarge("the request body exceeds the size limit")
        elif exc.code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        elif exc.code == 404:
            mapped = NotFound(f"no route {request.path}")
        else:
            return _json_response(
                {"error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.name}},
                exc.code or 500,
            )
        return _json_response(mapped.to_json(), mapped.status)
    # A 500 is always a bug: log it with its traceback, tell the caller nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _json_response(
        {"error": {"code": "internal", "message": "internal error; it has been logged"}}, 500
    )


def create_app(settings: Settings | None = None, *, surfaces: Iterable[str] = SURFACES) -> Flask:
    """A Flask app serving the given surfaces (mutations, reads, jobs) of the ledger."""
    surfaces = tuple(surfaces)
    unknown = set(surfaces) - set(SURFACES)
    assert not unknown, f"unknown surfaces {unknown}"
    app = Flask("arus")
    ledger = _Ledger(settings)
    limits = settings or ledger.settings
    # The largest body any route takes; each route then holds its own limit (read_json_body).
    app.config["MAX_CONTENT_LENGTH"] = max(limits.max_body_bytes, limits.max_batch_body_bytes)
    if "mutations" in surfaces:
        _register_mutations(app, ledger)
    if "reads" in surfaces:
        _register_reads(app, ledger)
    # A job function deployed on its own answers at its root URL too (what Scheduler calls).
    alone = len(surfaces) == 1
    if "relay" in surfaces:
        _register_relay(app, ledger, at_root=alone)
    if "close" in surfaces:
        _register_close(app, ledger, at_root=alone)
    app.register_error_handler(Exception, error_response)
    return app


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
            _apps[surface] = create_app(settings, surfaces=(surface,))
        return _apps[surface]


def post_entry_app(incoming: Request) -> Response:
    return serve_function(_app_for("mutations"), incoming)


def query_app(incoming: Request) -> Response:
    return serve_function(_app_for("reads"), incoming)


def relay_app(incoming: Request) -> Response:
    return serve_function(_app_for("relay"), incoming)


def daily_close_app(incoming: Request) -> Response:
    return serve_function(_app_for("close"), incoming)
