"""AlloyDB connections through the AlloyDB Python Connector and pg8000 (SPEC §9: a placement
may be an AlloyDB instance, named by its URI
`projects/P/locations/R/clusters/C/instances/I`).

As with Cloud SQL (`platform/cloudsql.py`, whose creator this shares): one connector
per process and configuration, made on first use, refreshing certificates lazily because Cloud
Run throttles the CPU between requests, closed at exit.
"""

from __future__ import annotations

import atexit
import re
import threading
from collections.abc import Callable
from typing import Any

from google.cloud.alloydb.connector import Connector, IPTypes, RefreshStrategy

from arus.platform.cloudsql import connector_creator
from arus.platform.config import ConfigError, Settings

INSTANCE_URI = re.compile(r"projects/[^/]+/locations/[^/]+/clusters/[^/]+/instances/[^/]+")
IP_TYPES = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}

_connectors: dict[tuple[IPTypes, bool], Connector] = {}
_connectors_lock = threading.Lock()


def get_connector(*, ip_type: IPTypes, enable_iam_auth: bool) -> Connector:
    with _connectors_lock:
        connector = _connectors.get((ip_type, enable_iam_auth))
        if connector is None:
            if not _connectors:
                atexit.register(close_connectors)
            connector = Connector(ip_type=ip_type, enable_iam_auth=enable_iam_auth,
                                  refresh_strategy=RefreshStrategy.LAZY)  # fmt: skip
            _connectors[(ip_type, enable_iam_auth)] = connector
        return connector


def close_connectors() -> None:
    with _connectors_lock:
        connectors = list(_connectors.values())
        _connectors.clear()
    for connector in connectors:
        connector.close()


def alloydb_creator(settings: Settings) -> Callable[[], Any]:
    """A SQLAlchemy `creator`: each call opens one pg8000 connection to the AlloyDB instance.
    Raises ConfigError at once when the configuration cannot work."""
    instance = settings.alloydb_instance
    if not instance or not INSTANCE_URI.fullmatch(instance):
        raise ConfigError("ARUS_ALLOYDB_INSTANCE must be the instance URI "
                          "projects/P/locations/R/clusters/C/instances/I")  # fmt: skip
    ip_type = IP_TYPES[settings.db_ip_type]
    return connector_creator(
        settings, instance,
        lambda: get_connector(ip_type=ip_type, enable_iam_auth=settings.db_iam_auth),
        engine="AlloyDB",
    )  # fmt: skip
