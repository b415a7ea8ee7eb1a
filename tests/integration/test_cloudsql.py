"""The Cloud SQL engine factory, with the connector replaced only at its network boundary.

The real Connector class is constructed (Application Default Credentials come from a
throwaway authorized-user file, which lazy refresh never uses before a connection). Only
Connector.connect is swapped: instead of asking the Cloud SQL Admin API for the instance's
address and certificate and dialling TLS, it gives the connector's own pg8000 adapter a socket
to the test PostgreSQL. Everything above that (arus.platform.db.create_engine, the creator, the
per-process connector, password resolution, SQLAlchemy's pool) is the production code.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from arus.platform import cloudsql
from arus.platform.config import ConfigError, Settings, load_settings
from arus.platform.db import create_engine, sqlalchemy_url
from google.cloud.sql.connector import IPTypes

from tests.support.cloud_sql import FakeCloudSql
from tests.support.errors import exception_chain

INSTANCE = "arus-test:europe-west1:arus-pg"


def cloud_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment a Cloud Run function would get, naming the test database."""
    url, _ = sqlalchemy_url(database_url)
    env = {
        "ARUS_CLOUDSQL_INSTANCE": INSTANCE,
        "ARUS_DB_USER": url.username or "postgres",
        "ARUS_DB_NAME": url.database or "postgres",
    }
    env.update(extra)
    return env


def test_engine_runs_real_queries_through_the_connector(
    cloud_sql: FakeCloudSql, database_url: str, ledger: Any
) -> None:
    password = f"env-injected-{uuid.uuid4().hex}"
    env = cloud_env(database_url, ARUS_DB_PASSWORD=password, ARUS_DB_IP_TYPE="private")
    settings = load_settings(env)
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            name = conn.execute(
                sa.text("SELECT name FROM ledgers WHERE id = :id"), {"id": ledger.ledger_id}
            ).scalar_one()
            # Through the connector as the application's role: keys are the engine's alone.
            keys = conn.execute(
                sa.text("SELECT has_table_privilege('api_keys', 'SELECT')")
            ).scalar_one()
            level = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    finally:
        engine.dispose()
    assert (name, keys, level) == ("test", False, "read committed")

    ((connector, init_kwargs),) = cloud_sql.created
    assert init_kwargs == {
        "ip_type": IPTypes.PRIVATE,
        "enable_iam_auth": False,
        "refresh_strategy": "lazy",
    }
    assert connector._refresh_strategy.name == "LAZY"  # what the connector made of it
    (call,) = cloud_sql.calls
    assert call == {
        "connector": connector,
        "instance": INSTANCE,
        "driver": "pg8000",
        "user": env["ARUS_DB_USER"],
        "db": env["ARUS_DB_NAME"],
        "password": password,
    }


def test_one_connector_serves_every_connection_and_engine(
    cloud_sql: FakeCloudSql, database_url: str
) -> None:
    env = cloud_env(
        database_url, ARUS_DB_PASSWORD="pw", ARUS_DB_POOL_SIZE="4", ARUS_DB_MAX_OVERFLOW="4"
    )
    settings = load_settings(env)
    engines = [create_engine(settings), create_engine(settings, autocommit=True)]
    workers = 8
    barrier = threading.Barrier(workers * len(engines))
    backend_pids: list[int] = []
    errors: list[BaseException] = []

    def hold_a_connection(engine: sa.Engine) -> None:
        try:
            with engine.connect() as conn:
                barrier.wait(timeout=30)  # every connection is open at the same moment
                backend_pids.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=hold_a_connection, args=(engine,))
        for engine in engines
        for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert len(set(backend_pids)) == workers * len(engines), "16 distinct server connections"
    assert len(cloud_sql.created) == 1, f"{len(cloud_sql.created)} connectors for 16 connections"
    (connector, _), *_ = cloud_sql.created
    assert len(cloud_sql.calls) == workers * len(engines)
    assert all(call["connector"] is connector for call in cloud_sql.calls)


def test_iam_database_auth_sends_no_password(cloud_sql: FakeCloudSql, database_url: str) -> None:
    env = cloud_env(
        database_url, ARUS_DB_IAM_AUTH="true", ARUS_DB_IP_TYPE="psc", ARUS_DB_PASSWORD="unused"
    )
    engine = create_engine(load_settings(env))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()
    ((_, init_kwargs),) = cloud_sql.created
    assert init_kwargs["enable_iam_auth"] is True
    assert init_kwargs["ip_type"] is IPTypes.PSC
    (call,) = cloud_sql.calls
    assert "password" not in call
    assert call["user"] == env["ARUS_DB_USER"]


def test_closed_connectors_are_replaced_on_the_next_connection(
    cloud_sql: FakeCloudSql, database_url: str
) -> None:
    engine = create_engine(load_settings(cloud_env(database_url, ARUS_DB_PASSWORD="pw")))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        (first, _), *_ = cloud_sql.created
        assert first._thread is not None and first._thread.is_alive()
        cloudsql.close_connectors()
        assert not first._thread.is_alive(), "close stops the connector's refresh thread"
        engine.dispose()  # the pooled connection does not survive a process restart either
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
    assert len(cloud_sql.created) == 2
    assert cloud_sql.calls[1]["connector"] is cloud_sql.created[1][0]


def test_missing_password_fails_at_start_up_naming_the_settings(
    cloud_sql: FakeCloudSql, database_url: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_engine(load_settings(cloud_env(database_url)))
    message = str(excinfo.value)
    for name in ("ARUS_DB_PASSWORD", "ARUS_DB_PASSWORD_SECRET", "ARUS_DB_IAM_AUTH"):
        assert name in message
    assert cloud_sql.created == [] and cloud_sql.calls == []


def test_connection_errors_do_not_reveal_the_password(
    cloud_sql: FakeCloudSql, database_url: str
) -> None:
    password = f"do-not-print-{uuid.uuid4().hex}"
    env = cloud_env(database_url, ARUS_DB_PASSWORD=password, ARUS_DB_NAME="no_such_database")
    engine = create_engine(load_settings(env))
    try:
        with pytest.raises(sa.exc.DBAPIError) as excinfo:
            with engine.connect():
                pass
    finally:
        engine.dispose()
    message = exception_chain(excinfo.value)
    assert "no_such_database" in message, "the server's error reaches the caller"
    assert password not in message
    assert password not in repr(excinfo.value.orig)
    assert cloud_sql.calls[0]["password"] == password


@pytest.mark.parametrize("instance", ["arus-pg", "project:arus-pg"])
def test_instance_must_be_a_connection_name(instance: str) -> None:
    with pytest.raises(ConfigError, match="PROJECT:REGION:INSTANCE"):
        cloudsql.cloudsql_creator(Settings(cloudsql_instance=instance, db_password="pw"))
