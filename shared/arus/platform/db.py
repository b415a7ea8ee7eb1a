"""Database engines: a plain PostgreSQL URL locally, the Cloud SQL Python Connector on Google Cloud.

Every engine uses pg8000 at READ COMMITTED. One engine per process is created lazily and
reused across function invocations (Cloud Run keeps the instance warm between requests).
"""

from __future__ import annotations

import select
import threading
from typing import Any

import pg8000.native
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from arus.platform.config import ConfigError, Settings

_engines: dict[tuple[Settings, bool], Engine] = {}
_engines_lock = threading.Lock()


def sqlalchemy_url(database_url: str) -> tuple[URL, dict[str, Any]]:
    """Turn a plain postgresql:// URL into a pg8000 URL plus its connect arguments.

    A `host` query parameter naming a directory (libpq's way to point at a Unix socket, and what
    embedded PostgreSQL prints) becomes pg8000's `unix_sock`.
    """
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError:
        raise ConfigError("ARUS_DATABASE_URL is not a valid postgresql:// URL") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError("ARUS_DATABASE_URL must be a postgresql:// URL")
    url = url.set(drivername="postgresql+pg8000")
    connect_args: dict[str, Any] = {}
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        port = url.port or 5432
        connect_args["unix_sock"] = f"{socket_dir}/.s.PGSQL.{port}"
        url = url.difference_update_query(["host"]).set(host=None, port=None)
    return url, connect_args


def create_engine(settings: Settings, *, autocommit: bool = False) -> Engine:
    """Build a new engine for the configured database (use `get_engine` to share one).

    `autocommit=True` gives the posting path's engine: each mutation is one statement (a call to
    a ledger function) that is its own READ COMMITTED transaction, so it costs one round trip
    and releases its row locks as soon as the server is done, with no COMMIT round trip after.
    """
    common: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT" if autocommit else "READ COMMITTED",
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        # The request path (autocommit) pings nothing (a round trip per request): a connection
        # the server closed is replaced at checkout for free (_replace_if_closed_by_server).
        # Jobs keep the ping. See ADR-007, "A database restart under an idle server".
        "pool_pre_ping": not autocommit,
        "pool_recycle": 1800,
        # Errors never carry bound values (descriptions, postings, keys) into logs.
        "hide_parameters": True,
    }
    if settings.cloudsql_instance:
        from arus.platform.cloudsql import cloudsql_creator

        engine = sa.create_engine(
            "postgresql+pg8000://", creator=cloudsql_creator(settings), **common
        )
    elif settings.alloydb_instance:
        from arus.platform.alloydb import alloydb_creator

        engine = sa.create_engine(
            "postgresql+pg8000://", creator=alloydb_creator(settings), **common
        )
    elif settings.database_url:
        url, connect_args = sqlalchemy_url(settings.database_url)
        engine = sa.create_engine(url, connect_args=connect_args, **common)
    else:
        raise ConfigError(
            "set ARUS_DATABASE_URL, or on Google Cloud ARUS_CLOUDSQL_INSTANCE or "
            "ARUS_ALLOYDB_INSTANCE"
        )
    sa.event.listen(engine, "handle_error", _discard_connection_on_driver_fault)
    sa.event.listen(engine, "connect", _session_bounds(settings))
    if autocommit:
        # Each statement is its own transaction at the session's default level: pin it to
        # READ COMMITTED so a server-wide default of SERIALIZABLE cannot change the engine.
        sa.event.listen(engine, "connect", _pin_read_committed)
        sa.event.listen(engine, "checkout", _replace_if_closed_by_server)
    return engine


# The peer closed its end (Linux reports it as POLLRDHUP), or the socket is hung up or broken.
_CLOSED_BY_PEER = (
    getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR | select.POLLNVAL
)


def _replace_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At checkout, before anything is sent: a pooled connection the server has closed is
    discarded and the pool hands out a fresh one (SQLAlchemy's own checkout protocol:
    DisconnectionError), so the request is served instead of answered 503.

    A server that ends a session (a restart or shutdown, pg_terminate_backend, a crashed
    backend) closes its socket, and an idle connection's socket then reports the peer's
    end-of-stream to a zero-timeout poll: no round trip, unlike a pre-ping. Only a closed peer
    counts, not unread data (a ParameterStatus after a reload is no reason to reconnect). A
    connection lost silently (no FIN reaches us) still fails on use: 503, or the gateway's one
    retry on a fresh connection for a call that is safe to repeat.
    """
    sock = dbapi_connection._usock  # pg8000's socket (TLS-wrapped through the Cloud SQL connector)
    poller = select.poll()
    poller.register(sock, _CLOSED_BY_PEER)
    if any(events & _CLOSED_BY_PEER for _fd, events in poller.poll(0)):
        raise sa.exc.DisconnectionError("the database server closed this pooled connection")


def _discard_connection_on_driver_fault(context: sa.engine.ExceptionContext) -> None:
    """Throw away a connection the driver failed on outside the DB-API's error types.

    pg8000 can raise a plain Python error (UnicodeEncodeError, RecursionError) half-way through
    a protocol exchange; the connection then holds unread server messages. Returned to the pool,
    it would hand another request the wrong replies, so only that connection is invalidated.
    """
    if not isinstance(context.original_exception, context.dialect.loaded_dbapi.Error):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def _session_bounds(settings: Settings) -> Any:
    """Per connection: how long a statement may run, a lock be waited for, a transaction sit
    idle. Past them PostgreSQL cancels the work, and the API answers 503 (arus.web.app)."""
    statements = (
        f"SET statement_timeout = {int(settings.db_statement_timeout_ms)}",
        f"SET lock_timeout = {int(settings.db_lock_timeout_ms)}",
        "SET idle_in_transaction_session_timeout = "
        f"{int(settings.db_idle_in_transaction_timeout_ms)}",
    )

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
        if not getattr(dbapi_connection, "autocommit", False):
            dbapi_connection.commit()  # SET is transactional: keep it past the pool's rollback

    return apply


def _pin_read_committed(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cursor.close()


def get_engine(settings: Settings, *, autocommit: bool = False) -> Engine:
    """The process-wide engine for these settings, created on first use."""
    with _engines_lock:
        engine = _engines.get((settings, autocommit))
        if engine is None:
            engine = create_engine(settings, autocommit=autocommit)
            _engines[(settings, autocommit)] = engine
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def run_prepared(conn: sa.Connection, statement: sa.TextClause, params: dict[str, Any]) -> Any:
    """The first column of the one row `statement` returns, run as a statement prepared once per
    database connection (pg8000's PreparedStatement) and executed by name after that.

    SQLAlchemy's pg8000 dialect parses, describes and plans every statement anew, in three
    round trips; a prepared statement is one (bind and execute). Measured on the posting call
    (ADR-009): 0.25 ms less PostgreSQL CPU and 0.4 ms less wall time per call. Failures reach
    the caller as SQLAlchemy's would: a driver error as a DBAPIError, the connection invalidated
    when it is lost, and discarded after any error outside the DB-API's types (see
    _discard_connection_on_driver_fault).
    """
    record = conn.connection
    prepared: dict[str, pg8000.native.PreparedStatement] = record.info.setdefault(
        "arus_prepared", {}
    )  # the pool clears `info` when it replaces the connection
    sql = statement.text
    try:
        found = prepared.get(sql)
        if found is None:
            found = prepared[sql] = pg8000.native.PreparedStatement(record.dbapi_connection, sql)
        rows = found.run(**params)
    except pg8000.native.Error as exc:
        lost = conn.dialect.is_disconnect(exc, record.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, pg8000.native.Error, hide_parameters=True, dialect=conn.dialect,
            connection_invalidated=lost,
        ) from exc  # fmt: skip
    except BaseException as exc:
        conn.invalidate(exc)
        raise
    return rows[0][0]
