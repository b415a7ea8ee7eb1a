"""Configuration, read once from the environment into a frozen dataclass (SPEC §6)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from arus.rules import MIN_RETENTION_DAYS

TRANSPORTS = ("log", "kafka", "pubsub")


class ConfigError(ValueError):
    """The environment does not describe a usable configuration."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    cloudsql_instance: str | None = None
    db_name: str = "arus"
    db_user: str = "arus"
    db_password: str | None = None
    db_password_secret: str | None = None
    db_iam_auth: bool = False
    db_ip_type: str = "public"
    db_pool_size: int = 5
    db_max_overflow: int = 2
    # Bounds on every session (0 turns one off): a statement, a lock wait, an idle transaction.
    db_statement_timeout_ms: int = 10_000
    db_lock_timeout_ms: int = 5_000
    db_idle_in_transaction_timeout_ms: int = 30_000
    outbox_transport: str = "log"
    kafka_bootstrap: str | None = None
    kafka_topic: str = "arus.ledger.events"
    pubsub_topic: str | None = None
    relay_batch_size: int = 100
    relay_time_budget_s: float = 50.0
    max_body_bytes: int = 1024 * 1024
    max_batch_body_bytes: int = 8 * 1024 * 1024
    log_format: str = "text"
    log_level: str = "INFO"
    # Retention in days (None: keep): idempotency claims, and published outbox rows.
    idempotency_retention_days: int | None = None
    outbox_retention_days: int | None = None
    # Bearer token for the job routes of `arus serve` (unset: they are not served). The relay
    # and daily_close functions on Google Cloud are gated by IAM instead.
    operator_token: str | None = field(default=None, repr=False)
    # The relay's and the close's own logins (SPEC §3.6) for a process that runs them beside
    # the API (`arus serve`, `arus dev`); a function on Google Cloud has its own settings.
    relay_database_url: str | None = field(default=None, repr=False)
    close_database_url: str | None = field(default=None, repr=False)

    def for_job(self, job: str) -> Settings:
        """These settings as the relay's or the close's login: its own URL when one is set."""
        url = {"relay": self.relay_database_url, "close": self.close_database_url}[job]
        return self if url is None else dataclasses.replace(self, database_url=url)

    def __post_init__(self) -> None:
        if self.outbox_transport not in TRANSPORTS:
            raise ConfigError(
                f"ARUS_OUTBOX_TRANSPORT must be one of {', '.join(TRANSPORTS)}, "
                f"not {self.outbox_transport!r}"
            )
        if self.db_ip_type not in ("public", "private", "psc"):
            raise ConfigError("ARUS_DB_IP_TYPE must be public, private or psc")
        if not 1 <= self.db_pool_size <= 100:
            raise ConfigError("ARUS_DB_POOL_SIZE must be between 1 and 100")
        if not 1 <= self.relay_batch_size <= 10_000:
            raise ConfigError("ARUS_RELAY_BATCH_SIZE must be between 1 and 10000")
        if self.log_format not in ("json", "text"):
            raise ConfigError("ARUS_LOG_FORMAT must be json or text")
        if not 0 < self.relay_time_budget_s <= 3600:
            raise ConfigError("ARUS_RELAY_TIME_BUDGET_S must be in (0, 3600]")
        for name, days in (
            ("ARUS_IDEMPOTENCY_RETENTION_DAYS", self.idempotency_retention_days),
            ("ARUS_OUTBOX_RETENTION_DAYS", self.outbox_retention_days),
        ):
            if days is not None and not MIN_RETENTION_DAYS <= days <= 36_500:
                raise ConfigError(f"{name} must be at least {MIN_RETENTION_DAYS} (days), or unset")
        if self.operator_token is not None and len(self.operator_token) < 32:
            raise ConfigError("ARUS_OPERATOR_TOKEN must be at least 32 characters")
        for name, value in (
            ("ARUS_DB_STATEMENT_TIMEOUT_MS", self.db_statement_timeout_ms),
            ("ARUS_DB_LOCK_TIMEOUT_MS", self.db_lock_timeout_ms),
            ("ARUS_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", self.db_idle_in_transaction_timeout_ms),
        ):
            if not 0 <= value <= 3_600_000:
                raise ConfigError(f"{name} must be between 0 and 3600000 (ms; 0 is no limit)")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return None if not env.get(name) else _int(env, name, 0)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _bool(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the ARUS_* variables; raises ConfigError with the variable's name."""
    env = os.environ if env is None else env
    return Settings(
        database_url=env.get("ARUS_DATABASE_URL") or None,
        cloudsql_instance=env.get("ARUS_CLOUDSQL_INSTANCE") or None,
        db_name=env.get("ARUS_DB_NAME") or "arus",
        db_user=env.get("ARUS_DB_USER") or "arus",
        db_password=env.get("ARUS_DB_PASSWORD") or None,
        db_password_secret=env.get("ARUS_DB_PASSWORD_SECRET") or None,
        db_iam_auth=_bool(env, "ARUS_DB_IAM_AUTH"),
        db_ip_type=(env.get("ARUS_DB_IP_TYPE") or "public").lower(),
        db_pool_size=_int(env, "ARUS_DB_POOL_SIZE", 5),
        db_max_overflow=_int(env, "ARUS_DB_MAX_OVERFLOW", 2),
        db_statement_timeout_ms=_int(env, "ARUS_DB_STATEMENT_TIMEOUT_MS", 10_000),
        db_lock_timeout_ms=_int(env, "ARUS_DB_LOCK_TIMEOUT_MS", 5_000),
        db_idle_in_transaction_timeout_ms=_int(
            env, "ARUS_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 30_000
        ),
        outbox_transport=(env.get("ARUS_OUTBOX_TRANSPORT") or "log").lower(),
        kafka_bootstrap=env.get("ARUS_KAFKA_BOOTSTRAP") or None,
        kafka_topic=env.get("ARUS_KAFKA_TOPIC") or "arus.ledger.events",
        pubsub_topic=env.get("ARUS_PUBSUB_TOPIC") or None,
        relay_batch_size=_int(env, "ARUS_RELAY_BATCH_SIZE", 100),
        relay_time_budget_s=_float(env, "ARUS_RELAY_TIME_BUDGET_S", 50.0),
        max_body_bytes=_int(env, "ARUS_MAX_BODY_BYTES", 1024 * 1024),
        max_batch_body_bytes=_int(env, "ARUS_MAX_BATCH_BODY_BYTES", 8 * 1024 * 1024),
        # Cloud Run sets K_SERVICE: log JSON there so Cloud Logging reads severity and fields.
        log_format=(env.get("ARUS_LOG_FORMAT") or ("json" if env.get("K_SERVICE") else "text")),
        log_level=(env.get("ARUS_LOG_LEVEL") or "INFO").upper(),
        operator_token=env.get("ARUS_OPERATOR_TOKEN") or None,
        relay_database_url=env.get("ARUS_RELAY_DATABASE_URL") or None,
        close_database_url=env.get("ARUS_CLOSE_DATABASE_URL") or None,
        idempotency_retention_days=_optional_int(env, "ARUS_IDEMPOTENCY_RETENTION_DAYS"),
        outbox_retention_days=_optional_int(env, "ARUS_OUTBOX_RETENTION_DAYS"),
    )
