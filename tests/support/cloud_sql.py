"""Cloud SQL with the connector replaced only at its network boundary.

- `cloud_sql` (per test): the real Connector class, with Application Default Credentials from a
  throwaway authorized-user file (lazy refresh never uses them before a connection), and only
  Connector.connect swapped: instead of asking the Cloud SQL Admin API for the instance's
  address and certificate and dialling TLS, it gives the connector's own pg8000 adapter a socket
  to a local PostgreSQL (the test database, until a test `point_at`s another). Everything above
  that (the engine factory, the creator, the per-process connector, password resolution,
  SQLAlchemy's pool) is the production code. Registered for the suite by tests/conftest.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from arus.platform import cloudsql
from arus.platform.db import sqlalchemy_url
from google.cloud.sql.connector import Connector
from google.cloud.sql.connector import pg8000 as connector_pg8000


@dataclass
class FakeCloudSql:
    """What crossed the boundary: connectors created (with their arguments) and connections."""

    unix_sock: str = ""
    created: list[tuple[Connector, dict[str, Any]]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def point_at(self, database_url: str) -> tuple[str, str]:
        """Send connections to database_url's server; returns its (user, database)."""
        url, connect_args = sqlalchemy_url(database_url)
        self.unix_sock = connect_args["unix_sock"]
        return url.username or "postgres", url.database or "postgres"

    def connect(self, connector: Connector, instance: str, driver: str, **kwargs: Any) -> Any:
        with self.lock:
            self.calls.append({"connector": connector, "instance": instance, "driver": driver,
                               **kwargs})  # fmt: skip
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.unix_sock)
            return connector_pg8000.connect("10.20.30.40", sock, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            sock.close()
            raise


@pytest.fixture
def cloud_sql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Iterator[FakeCloudSql]:
    adc = tmp_path / "adc.json"
    adc.write_text(
        '{"type": "authorized_user", "client_id": "test", "client_secret": "test",'
        ' "refresh_token": "test"}'
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    fake = FakeCloudSql()
    fake.point_at(database_url)
    original_init = Connector.__init__

    def init(self: Connector, **kwargs: Any) -> None:
        with fake.lock:
            fake.created.append((self, kwargs))
        original_init(self, **kwargs)

    def connect(self: Connector, instance: str, driver: str, **kwargs: Any) -> Any:
        return fake.connect(self, instance, driver, **kwargs)

    monkeypatch.setattr(Connector, "__init__", init)
    monkeypatch.setattr(Connector, "connect", connect)
    cloudsql.close_connectors()
    try:
        yield fake
    finally:
        cloudsql.close_connectors()
