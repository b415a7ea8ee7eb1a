"""Cloud SQL connections through the Cloud SQL Python Connector and pg8000.

The connector fetches the instance's address and an ephemeral client certificate from the
Cloud SQL Admin API and opens a TLS socket (optionally authenticating with the service
account's IAM identity instead of a password). It owns a background event-loop thread and a
certificate cache, so there is one per process and configuration, created on first use, shared
by every engine and connection, and closed at exit. "lazy" refresh fetches certificates only
when a connection needs one: Cloud Run throttles the CPU between requests, which starves the
default background refresh.

The password comes from ARUS_DB_PASSWORD (Cloud Run injects it from Secret Manager as a
secret environment variable) or is read through arus.platform.secrets from the secret version
named by ARUS_DB_PASSWORD_SECRET; with ARUS_DB_IAM_AUTH no password is sent at all. The password is
never logged and no error message contains it.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from google.cloud.sql.connector import Connector, IPTypes

from arus.platform.config import ConfigError, Settings
from arus.platform.secrets import access_secret

log = logging.getLogger("arus.platform.cloudsql")

DRIVER = "pg8000"
REFRESH_STRATEGY = "lazy"
IP_TYPES = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}

# One connector per process and configuration, for Cloud SQL's and AlloyDB's alike (each owns a
# refresh thread and a certificate cache), all closed at exit.
_connectors: dict[tuple[object, ...], Any] = {}
_connectors_lock = threading.Lock()
_atexit_registered = False


def shared_connector(key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """The process-wide connector for `key`, made by `make` on first use."""
    global _atexit_registered
    with _connectors_lock:
        connector = _connectors.get(key)
        if connector is None:
            connector = _connectors[key] = make()
            if not _atexit_registered:
                atexit.register(close_connectors)
                _atexit_registered = True
            log.info("created connector %s", key)
        return connector


def get_connector(*, ip_type: IPTypes, enable_iam_auth: bool) -> Connector:
    """The process-wide Cloud SQL connector for this IP type and auth mode."""
    connector: Connector = shared_connector(
        ("cloudsql", ip_type.name.lower(), enable_iam_auth, REFRESH_STRATEGY),
        lambda: Connector(ip_type=ip_type, enable_iam_auth=enable_iam_auth,
                          refresh_strategy=REFRESH_STRATEGY),
    )  # fmt: skip
    return connector


def close_connectors() -> None:
    """Close every connector (stops its refresh thread); the next connection makes a new one."""
    with _connectors_lock:
        connectors = list(_connectors.values())
        _connectors.clear()
    for connector in connectors:
        connector.close()


def password_source(settings: Settings, engine: str = "Cloud SQL") -> Callable[[], str | None]:
    """How each new connection gets its password; fails now if there is no way to get one."""
    if settings.db_iam_auth:
        return lambda: None
    password = settings.db_password
    if password:
        return lambda: password
    secret_name = settings.db_password_secret
    if secret_name:
        return lambda: access_secret(secret_name)
    raise ConfigError(
        f"no database password for {engine}: set ARUS_DB_PASSWORD (a Secret Manager secret "
        "mounted as an environment variable), ARUS_DB_PASSWORD_SECRET "
        "(projects/P/secrets/S/versions/V), or ARUS_DB_IAM_AUTH=true"
    )


def cloudsql_creator(settings: Settings) -> Callable[[], Any]:
    """A SQLAlchemy `creator`: each call opens one pg8000 connection to the Cloud SQL instance.

    Raises ConfigError at once when the configuration cannot work (no instance, no way to
    authenticate); the connector itself is only created by the first connection.
    """
    instance = settings.cloudsql_instance
    if not instance or instance.count(":") < 2:
        raise ConfigError(
            "ARUS_CLOUDSQL_INSTANCE must be the instance connection name PROJECT:REGION:INSTANCE"
        )
    ip_type = IP_TYPES[settings.db_ip_type]
    return connector_creator(
        settings, instance,
        lambda: get_connector(ip_type=ip_type, enable_iam_auth=settings.db_iam_auth),
        engine="Cloud SQL",
    )  # fmt: skip


def connector_creator(
    settings: Settings, instance: str, connector: Callable[[], Any], *, engine: str
) -> Callable[[], Any]:
    """A SQLAlchemy `creator` over one of Google's connectors (Cloud SQL's or AlloyDB's, which
    connect alike): each call opens one pg8000 connection to `instance` as ARUS_DB_USER."""
    password_for_connection = password_source(settings, engine)
    user, db = settings.db_user, settings.db_name

    def connect() -> Any:
        kwargs: dict[str, Any] = {"user": user, "db": db}
        password = password_for_connection()
        if password is not None:
            kwargs["password"] = password
        return connector().connect(instance, DRIVER, **kwargs)

    return connect
