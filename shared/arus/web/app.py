"""HTTP: one Flask routing layer for every function (SPEC §3).

`create_app` with every surface is what `arus serve` runs; each function serves one surface
(`arus.web.functions`). Job routes carry no API key: `arus serve` demands the operator token
and serves them only when one is set; on Google Cloud only the scheduler's service account may
invoke the job functions (IAM, OIDC). Handlers only parse, authenticate, call a use case and
render; errors are domain exceptions turned into `{"error": {code, message}}` in one place,
and a database that is down or timing out is 503 `service_unavailable` with Retry-After.
Every path and query value of an API route is held to text the ledger can store before the
route runs (`_register_api`): a NUL or bytes that are not UTF-8 are a 422, never a 500.
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal, NoReturn

import sqlalchemy as sa
from flask import Flask, Response, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from arus.errors import (
    ArusError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthenticated,
    ValidationError,
    refusal,
    sqlstate,
    unavailable,
)
from arus.ledger import commands, gateway, reads
from arus.ledger.access import Caller, Credentials, Scope, authorize, parse_credentials
from arus.platform import telemetry
from arus.platform.config import Settings, UnknownPlacement, load_settings
from arus.platform.db import get_engine
from arus.web import openapi
from arus.web.bodies import check_url_text, json_response, read_json_body

log = logging.getLogger("arus.web.app")

SURFACES = ("mutations", "reads", "relay", "close")

# The mutation routes. A request's idempotency fingerprint names its route (`operation`), so a
# key retried on another route is a conflict; a batch item is the same request as a POST to
# ENTRIES_ROUTE with the same body.
ACCOUNTS_ROUTE = "/v1/accounts"
ENTRIES_ROUTE = "/v1/entries"
BATCH_ROUTE = "/v1/entries/batch"
REVERSE_ROUTE = "/v1/entries/<entry_id>/reverse"
POST_PENDING_ROUTE = "/v1/entries/<entry_id>/post"
VOID_PENDING_ROUTE = "/v1/entries/<entry_id>/void"


def operation(route: str, **ids: object) -> str:
    """`POST <route>` with its ids filled in (canonical forms): what a fingerprint names."""
    path = route
    for name, value in ids.items():
        path = path.replace(f"<{name}>", str(value))
    assert "<" not in path, f"{route} needs its ids"
    return f"POST {path}"


class Resources:
    """What an app's routes share: settings and the two pools, made on first use (never at
    import: cold starts stay cheap)."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    def engine_for(self, credentials: Credentials) -> Engine:
        """The request path's pool of the key's placement (SPEC §9), opened on first use: every
        statement its own transaction, one round trip. A placement these settings do not
        name is an unknown key."""
        try:
            placement = self.settings.for_placement(credentials.placement)
        except UnknownPlacement:
            raise Unauthenticated("unknown or revoked API key") from None
        return get_engine(placement, autocommit=True)

    def every_engine(self) -> dict[str, Engine]:
        return {s.placement: get_engine(s, autocommit=True) for s in self.settings.each_placement()}


def _credentials() -> Credentials:
    return parse_credentials(request.headers.get("Authorization"))


def _authorized_parse(
    ledger: Resources, credentials: Credentials, parse: Callable[[], Any], scope: Scope = "write"
) -> Any:
    """Parse a request; when it fails, answer 401/403 first if that is the truth.

    Success costs no extra round trip (the engine call or the read authorises); only a refused
    request asks the database who is calling, so the answer's precedence is as if it had asked
    first.
    """
    try:
        return parse()
    except ArusError:
        with ledger.engine_for(credentials).connect() as conn:
            authorize(conn, credentials, scope=scope)
        raise


def _register_api(
    app: Flask, ledger: Resources, register: Callable[[Flask, Resources], None], scope: Scope
) -> None:
    """Register a surface's routes, each checking first that its path and query values are
    text the ledger can store (bodies.check_url_text): one check for every value of every
    route, before any route reads one; refused, it answers 401/403 first if that is the truth.
    """
    before = set(app.view_functions)
    register(app, ledger)
    for endpoint in set(app.view_functions) - before:
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = _url_text_checked(ledger, view, scope)


def _url_text_checked(
    ledger: Resources, view: Callable[..., Any], scope: Scope
) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(**path_params: str) -> Any:
        _authorized_parse(ledger, _credentials(), lambda: check_url_text(path_params), scope)
        return view(**path_params)

    return checked


def _mutation_response(result: gateway.MutationResult, location: str) -> Response:
    headers = {"Location": location}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(result.body, result.status, headers)


def _register_mutations(app: Flask, ledger: Resources) -> None:
    limits = ledger.settings

    @app.post(ACCOUNTS_ROUTE)
    def create_account() -> Response:
        credentials = _credentials()

        def parse() -> tuple[object, commands.NewAccount, str | None]:
            body = read_json_body(required=True, max_bytes=limits.max_body_bytes)
            key = request.headers.get("Idempotency-Key")
            if key == "":
                raise ValidationError(
                    "Idempotency-Key, when sent, must be 1-255 printable characters"
                )
            parsed_key = None if key is None else commands.parse_idempotency_key(key)
            return body, commands.parse_new_account(body), parsed_key

        body, account, key = _authorized_parse(ledger, credentials, parse)
        result = gateway.create_account(
            ledger.engine_for(credentials),
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

        def parse() -> tuple[str, object, commands.NewEntry]:
            key = commands.parse_idempotency_key(request.headers.get("Idempotency-Key"))
            body = read_json_body(required=True, max_bytes=limits.max_body_bytes)
            return key, body, commands.parse_new_entry(body)

        key, body, entry = _authorized_parse(ledger, credentials, parse)
        result = gateway.post_entry(
            ledger.engine_for(credentials),
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
            lambda: commands.parse_batch(
                read_json_body(required=True, max_bytes=limits.max_batch_body_bytes)
            ),
        )
        results = gateway.post_batch(
            ledger.engine_for(credentials),
            credentials=credentials,
            batch=batch,
            item_operation=operation(ENTRIES_ROUTE),
        )
        return json_response({"results": results}, 200)

    @app.post(REVERSE_ROUTE)
    def reverse_entry(entry_id: str) -> Response:
        credentials = _credentials()

        def parse() -> tuple[str, object, commands.Reversal]:
            parsed_id = commands.parse_object_id(entry_id)
            if parsed_id is None:
                raise NotFound(f"no entry {entry_id}")
            key = commands.parse_idempotency_key(request.headers.get("Idempotency-Key"))
            body = read_json_body(required=False, max_bytes=limits.max_body_bytes)
            return key, body, commands.parse_reversal(parsed_id, body)

        key, body, reversal = _authorized_parse(ledger, credentials, parse)
        result = gateway.reverse_entry(
            ledger.engine_for(credentials),
            credentials=credentials,
            reversal=reversal,
            idempotency_key=key,
            request_body=body,
            operation=operation(REVERSE_ROUTE, entry_id=reversal.entry_id),
        )
        return _mutation_response(result, f"/v1/entries/{result.body['id']}")

    for route, parse_body, use_case in (
        (POST_PENDING_ROUTE, commands.parse_post_pending, gateway.post_pending),
        (VOID_PENDING_ROUTE, commands.parse_void_pending, gateway.void_pending),
    ):
        _register_pending_action(app, ledger, route, parse_body, use_case)


def _register_pending_action(
    app: Flask,
    ledger: Resources,
    route: str,
    parse_body: Callable[[uuid.UUID, object], commands.PendingAction],
    use_case: Callable[..., gateway.MutationResult],
) -> None:
    """`POST /v1/entries/{id}/post` or `/void`: parsed (authorised first if it does not
    parse), then one engine call."""

    def pending_action(entry_id: str) -> Response:
        credentials = _credentials()

        def parse() -> tuple[str, object, commands.PendingAction]:
            parsed_id = commands.parse_object_id(entry_id)
            if parsed_id is None:
                raise NotFound(f"no entry {entry_id}")
            key = commands.parse_idempotency_key(request.headers.get("Idempotency-Key"))
            body = read_json_body(required=False, max_bytes=ledger.settings.max_body_bytes)
            return key, body, parse_body(parsed_id, body)

        key, body, action = _authorized_parse(ledger, credentials, parse)
        result = use_case(
            ledger.engine_for(credentials),
            credentials=credentials,
            action=action,
            idempotency_key=key,
            request_body=body,
            operation=operation(route, entry_id=action.entry_id),
        )
        return _mutation_response(result, f"/v1/entries/{result.body['id']}")

    app.add_url_rule(route, use_case.__name__, pending_action, methods=["POST"])


def _register_reads(app: Flask, ledger: Resources) -> None:
    def read(
        use_case: Callable[..., Any],
        *args: Any,
        paged: bool = False,
        render: Callable[[Any], Response] | None = None,
    ) -> Response:
        """One round trip: the use case's statement carries the key check (auth.Caller).
        The result is JSON, or what `render` makes of it.

        A read changes nothing, so on a connection found dead (lost without the server's close
        reaching us, which the pool's checkout cannot see) it is repeated once on a fresh one.
        """
        credentials = _credentials()
        caller = Caller(credentials, "read")

        def run(conn: sa.Connection) -> Any:
            try:
                if paged:
                    limit = reads.parse_limit(request.args.get("limit"))
                    cursor = request.args.get("cursor")
                    return use_case(caller, conn, *args, limit=limit, cursor=cursor)
                return use_case(caller, conn, *args)
            except ValidationError:
                # Refused before its statement ran: a bad key still answers 401/403 first.
                caller.check(conn)
                raise

        for attempt in (1, 2):
            try:
                with ledger.engine_for(credentials).connect() as conn:
                    result = run(conn)
                break
            except sa.exc.DBAPIError as exc:
                if not (exc.connection_invalidated and attempt == 1):
                    raise
        if render is not None:
            return render(result)
        body = result.to_json() if isinstance(result, reads.Page) else result
        return json_response(body, 200)

    @app.get("/v1/accounts")
    def list_accounts() -> Response:
        return read(reads.list_accounts, _query(), paged=True)

    @app.get("/v1/accounts/<ref>")
    def get_account(ref: str) -> Response:
        return read(reads.get_account, ref)

    @app.get("/v1/accounts/<ref>/postings")
    def account_postings(ref: str) -> Response:
        return read(reads.account_postings, ref, paged=True)

    @app.get("/v1/entries")
    def list_entries() -> Response:
        return read(reads.list_entries, _query(), paged=True)

    @app.get("/v1/entries/<entry_id>")
    def get_entry(entry_id: str) -> Response:
        return read(reads.get_entry, commands.parse_object_id(entry_id))

    @app.get("/v1/trial-balance")
    def trial_balance() -> Response:
        return read(reads.trial_balance)

    @app.get("/v1/accounts/<ref>/balance")
    def account_balance_at(ref: str) -> Response:
        return read(reads.account_balance_at, ref, request.args.get("at"))

    @app.get("/v1/balances")
    def balances() -> Response:
        """`?as_of=YYYY-MM-DD`: a closed day's snapshot; `?at=<RFC 3339>`: balances then."""
        if "at" in request.args:
            if "as_of" in request.args:
                return read(_refuse, "give as_of or at, not both")
            return read(reads.balances_at, request.args.get("at"), paged=True)
        return read(reads.balances_as_of, request.args.get("as_of"), paged=True)

    @app.get("/v1/closes")
    def list_closes() -> Response:
        return read(reads.list_closes, paged=True)

    @app.get("/v1/closes/<date>")
    def get_close(date: str) -> Response:
        return read(reads.get_close, date)

    @app.get("/v1/rollups")
    def rollups() -> Response:
        return read(reads.rollup, _query())

    @app.get("/v1/accounts/<ref>/statement")
    def account_statement(ref: str) -> Response:
        """JSON, or CSV when the request's Accept prefers text/csv (`_statement_csv`)."""
        wants_csv = request.accept_mimetypes.best_match(STATEMENT_TYPES) == "text/csv"
        render = _statement_csv if wants_csv else _statement_json
        return read(reads.account_statement, ref, _query(), paged=True, render=render)


# What a statement is served as; JSON, the first, unless the request's Accept prefers CSV.
STATEMENT_TYPES = ["application/json", "text/csv"]
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _statement_json(statement: reads.Statement) -> Response:
    return json_response(statement.to_json(), 200, {"Vary": "Accept"})


def _statement_csv(statement: reads.Statement) -> Response:
    """A statement page as CSV (RFC 4180): a header row of the JSON line's fields, then one
    row per line. What the JSON carries beside its lines goes in headers: X-Account-Id,
    X-Statement-From, X-Statement-To, X-Opening-Balance, X-Closing-Balance, and X-Next-Cursor
    when there is a next page (pass it as `cursor`, as with JSON). A description that starts
    with = + - @ or a tab or carriage return gets a leading ' so no spreadsheet runs it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(reads.STATEMENT_LINE_FIELDS)
    for line in statement.lines:
        description = line["description"] or ""
        if description.startswith(_FORMULA_STARTS):
            description = "'" + description
        writer.writerow([description if field == "description" else line[field]
                         for field in reads.STATEMENT_LINE_FIELDS])  # fmt: skip
    headers = {
        "Vary": "Accept",
        "X-Account-Id": str(statement.account_id),
        "X-Statement-From": statement.start.isoformat(),
        "X-Statement-To": statement.end.isoformat(),
        "X-Opening-Balance": str(statement.opening_balance),
        "X-Closing-Balance": str(statement.closing_balance),
    }
    if statement.next_cursor is not None:
        headers["X-Next-Cursor"] = statement.next_cursor
    return Response(out.getvalue(), 200, headers, mimetype="text/csv")


def _query() -> list[tuple[str, str]]:
    """The query string's name-value pairs, repeats kept (the filters refuse them)."""
    return list(request.args.items(multi=True))


def _register_health(app: Flask, ledger: Resources) -> None:
    """`/healthz`: the process answers (no key, no database). `/readyz`: so does the database."""

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"}, 200)

    @app.get("/openapi.json")
    def openapi_document() -> Response:
        return json_response(openapi.document(), 200)

    @app.get("/readyz")
    def readyz() -> Response:
        # Every placement answers, or the 503 of the first that does not.
        for engine in ledger.every_engine().values():
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        return json_response({"status": "ready"}, 200)


def _refuse(_scope: object, _conn: object, message: str) -> NoReturn:
    raise ValidationError(message)


JobsGate = Literal["operator_token", "iam"]


def _operator_check(settings: Settings, gate: JobsGate) -> Callable[[], None] | None:
    """What a job route runs first to let only the operator through; None: no job routes."""
    if gate == "iam":
        return lambda: None
    token = settings.operator_token
    if token is None:
        return None
    expected = f"Bearer {token}".encode()

    def check() -> None:
        given = (request.headers.get("Authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("job routes need Authorization: Bearer <ARUS_OPERATOR_TOKEN>")

    return check


def _register_relay(
    app: Flask, ledger: Resources, operator: Callable[[], None], *, at_root: bool
) -> None:
    """`POST /jobs/relay`: one relay run (Cloud Scheduler calls it every minute with OIDC)."""

    def run_relay() -> Response:
        operator()
        from arus.outbox import relay

        outcome = relay.run_once(ledger.settings)
        if outcome.error is not None:
            return json_response(
                {"error": {"code": "relay_failed", "message": outcome.error}, **outcome.to_json()},
                503,
            )
        return json_response(outcome.to_json(), 200)

    app.add_url_rule("/jobs/relay", "relay", run_relay, methods=["POST"])
    if at_root:
        app.add_url_rule("/", "relay_root", run_relay, methods=["POST"])


def _register_close(
    app: Flask, ledger: Resources, operator: Callable[[], None], *, at_root: bool
) -> None:
    """`POST /jobs/daily-close` with optional `{"date": "YYYY-MM-DD"}` (default yesterday)."""

    def run_close() -> Response:
        operator()
        from arus.jobs import close

        body = read_json_body(required=False, max_bytes=ledger.settings.max_body_bytes)
        if not isinstance(body, dict) or set(body) - {"date"}:
            raise ValidationError('the body is {"date": "YYYY-MM-DD"} or empty')
        day = commands.parse_as_of(body["date"], field="date") if "date" in body else None
        reports = close.close_all(ledger.settings, day)
        failed = [r for r in reports if not r["ok"]]
        if failed:
            message = (f"{len(failed)} ledger(s) or placement(s) did not close: imbalance, "
                       "drift, or a placement that could not be reached")  # fmt: skip
            return json_response(
                {"error": {"code": "close_failed", "message": message}, "closes": reports}, 500
            )
        return json_response({"closes": reports}, 200)

    app.add_url_rule("/jobs/daily-close", "daily_close", run_close, methods=["POST"])
    if at_root:
        app.add_url_rule("/", "daily_close_root", run_close, methods=["POST"])


def error_response(exc: Exception) -> Response:
    """The answer to any exception a route raises: the API error body, never a traceback."""
    if isinstance(exc, ServiceUnavailable):
        return json_response(exc.to_json(), exc.status, {"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, ArusError):
        return json_response(exc.to_json(), exc.status)
    down = unavailable(exc)
    if down is not None:
        # One line, and no request values: the class and SQLSTATE say what the database did.
        log.warning(
            "database unavailable on %s %s: %s %s",
            request.method, request.url_rule.rule if request.url_rule else "?",
            type(exc).__name__, sqlstate(exc) or "-",
        )  # fmt: skip
        return error_response(down)
    if isinstance(exc, HTTPException):
        mapped: ArusError
        if isinstance(exc, RequestEntityTooLarge):
            mapped = PayloadTooLarge("the request body exceeds the size limit")
        elif exc.code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        elif exc.code == 404:
            mapped = NotFound(f"no route {request.path}")
        else:
            return json_response(refusal(exc.name), exc.code or 500)
        return json_response(mapped.to_json(), mapped.status)
    # A 500 is always a bug: log it with its traceback, tell the caller nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return json_response(
        {"error": {"code": "internal", "message": "internal error; it has been logged"}}, 500
    )


def create_app(
    settings: Settings | None = None,
    *,
    surfaces: Iterable[str] = SURFACES,
    jobs_gate: JobsGate = "operator_token",
) -> Flask:
    """A Flask app serving the given surfaces (mutations, reads, jobs) of the ledger.

    Job routes answer only the operator (SPEC §3.4): with `jobs_gate="operator_token"` (what
    `arus serve` runs) they demand `Authorization: Bearer <ARUS_OPERATOR_TOKEN>` and are not
    served at all when no token is set; `"iam"` is for the relay and daily_close functions,
    which Cloud Run's IAM lets only the scheduler's service account invoke.
    """
    surfaces = tuple(surfaces)
    unknown = set(surfaces) - set(SURFACES)
    assert not unknown, f"unknown surfaces {unknown}"
    app = Flask("arus")
    ledger = Resources(settings)
    limits = settings or ledger.settings
    # The largest body any route takes; each route then holds its own limit (read_json_body).
    # One byte more, so a chunked body one byte over a route's limit still reaches the route
    # (read_json_body), which then refuses it as 413 instead of reading a cut-off body.
    app.config["MAX_CONTENT_LENGTH"] = max(limits.max_body_bytes, limits.max_batch_body_bytes) + 1
    if "mutations" in surfaces:
        _register_api(app, ledger, _register_mutations, "write")
    if "reads" in surfaces:
        _register_api(app, ledger, _register_reads, "read")
    # A job function deployed on its own answers at its root URL too (what Scheduler calls).
    alone = len(surfaces) == 1
    operator = _operator_check(ledger.settings if settings is None else settings, jobs_gate)
    if operator is not None:
        if "relay" in surfaces:
            _register_relay(app, ledger, operator, at_root=alone)
        if "close" in surfaces:
            _register_close(app, ledger, operator, at_root=alone)
    _register_health(app, ledger)
    telemetry.instrument(app, limits)  # a span per request (its routes are all registered)
    app.register_error_handler(Exception, error_response)
    return app
