"""AlloyDB connections through the AlloyDB Python Connector and pg8000 (SPEC §9: a placement
may be an AlloyDB instance, named by its URI
`projects/P/locations/R/clusters/C/instances/I`).

As with Cloud SQL (`platform/cloudsql.py`, whose connector cache and creator this shares): one
connector per process and configuration, made on first use, refreshing certificates lazily
because Cloud Run throttles the CPU between requests, closed at exit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from google.cloud.alloydb.connector import Connector, IPTypes, RefreshStrategy

from arus.platform.cloudsql import close_connectors, connector_creator, shared_connector
from arus.platform.config import ConfigError, Settings

__all__ = ["alloydb_creator", "close_connectors", "get_connector"]

INSTANCE_URI = re.compile(r"projects/[^/]+/locations/[^/]+/clusters/[^/]+/instances/[^/]+")
IP_TYPES = {"public": IPTypes.PUBLIC, "private": IPTypes.PRIVATE, "psc": IPTypes.PSC}


def get_connector(*, ip_type: IPTypes, enable_iam_auth: bool) -> Connector:
    """The process-wide AlloyDB connector for this IP type and auth mode."""
    connector: Connector = shared_connector(
        ("alloydb", ip_type.name.lower(), enable_iam_auth, "lazy"),
        lambda: Connector(ip_type=ip_type, enable_iam_auth=enable_iam_auth,
                          refresh_strategy=RefreshStrategy.LAZY),
    )  # fmt: skip
    return connector


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
