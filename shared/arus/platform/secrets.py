"""Secret Manager access: a secret version's payload as text, cached briefly per process.

A Cloud Run instance serves many requests and opens a few database connections; each one
needs the database password, so the value is kept for `CACHE_TTL_S` and fetched again after
that (a rotation that moves the `latest` alias is picked up within that time). Payloads are
verified against their CRC32C checksum when the service sends one. The secret's value never
appears in a log line or an exception message; only its resource name does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from google.api_core import exceptions as google_exceptions

from arus.platform.config import ConfigError

if TYPE_CHECKING:
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

log = logging.getLogger("arus.platform.secrets")

CACHE_TTL_S = 300.0
CACHE_MAX_ENTRIES = 32
REQUEST_TIMEOUT_S = 10.0
_NAME_PARTS = ("projects", None, "secrets", None, "versions", None)

_cache: dict[str, tuple[str, float]] = {}
_cache_lock = threading.Lock()
_default_client: SecretManagerServiceClient | None = None
_client_lock = threading.Lock()


class SecretAccessError(ConfigError):
    """A secret version could not be read (absent, disabled, not permitted, unreachable)."""


def _check_name(name: str) -> None:
    parts = name.split("/")
    well_formed = len(parts) == len(_NAME_PARTS) and all(
        part != "" and (expected is None or part == expected)
        for part, expected in zip(parts, _NAME_PARTS, strict=True)
    )
    if not well_formed:
        raise SecretAccessError(
            f"secret version name {name!r} must look like "
            "projects/PROJECT/secrets/SECRET/versions/VERSION (VERSION may be 'latest')"
        )


def _client() -> SecretManagerServiceClient:
    """The process-wide client on Application Default Credentials, created on first use."""
    global _default_client
    with _client_lock:
        if _default_client is None:
            from google.cloud.secretmanager_v1 import SecretManagerServiceClient

            _default_client = SecretManagerServiceClient()
        return _default_client


def set_default_client(client: SecretManagerServiceClient | None) -> None:
    """Use `client` for every later read without an explicit client (None: back to ADC)."""
    global _default_client
    with _client_lock:
        _default_client = client


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager reports; payloads are a few bytes."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _fetch(name: str, client: SecretManagerServiceClient) -> str:
    try:
        response = client.access_secret_version(name=name, timeout=REQUEST_TIMEOUT_S)
    except google_exceptions.NotFound:
        raise SecretAccessError(
            f"Secret Manager has no enabled secret version {name} "
            "(check the name and that the version exists and is enabled)"
        ) from None
    except google_exceptions.PermissionDenied:
        raise SecretAccessError(
            f"permission denied reading {name}: the service account needs "
            "roles/secretmanager.secretAccessor on that secret"
        ) from None
    except google_exceptions.GoogleAPICallError as exc:
        raise SecretAccessError(
            f"could not read {name} from Secret Manager: {exc.code} {exc.message}"
        ) from None
    payload = response.payload
    if "data_crc32c" in payload and _crc32c(payload.data) != payload.data_crc32c:
        raise SecretAccessError(f"the payload of {name} failed its CRC32C check")
    try:
        return payload.data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretAccessError(f"the payload of {name} is not UTF-8 text") from None


def access_secret(name: str, *, client: SecretManagerServiceClient | None = None) -> str:
    """The payload of the secret version `name` (projects/P/secrets/S/versions/V) as text.

    Served from the process cache while younger than CACHE_TTL_S. Raises SecretAccessError
    with a message naming the secret (never its value) when it cannot be read.
    """
    _check_name(name)
    now_s = time.monotonic()
    with _cache_lock:
        cached = _cache.get(name)
        if cached is not None and now_s - cached[1] < CACHE_TTL_S:
            return cached[0]
    value = _fetch(name, client if client is not None else _client())
    with _cache_lock:
        if name not in _cache and len(_cache) >= CACHE_MAX_ENTRIES:
            del _cache[min(_cache, key=lambda key: _cache[key][1])]
        _cache[name] = (value, now_s)
    log.info("read secret version %s from Secret Manager", name)
    return value


def clear_cache() -> None:
    """Forget every cached payload (tests; or to force a re-read after a rotation)."""
    with _cache_lock:
        _cache.clear()
