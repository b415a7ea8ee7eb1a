"""Configuration, read once from the environment into a frozen dataclass (SPEC §6), which
pydantic validates: a variable written wrong is an error that names it."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from arus.rules import MIN_RETENTION_DAYS


class ConfigError(ValueError):
    """The environment does not describe a usable configuration."""


MAIN_PLACEMENT = "main"  # the one placement of settings without ARUS_PLACEMENTS
PLACEMENT_NAME = r"[a-z][a-z0-9-]{0,30}"
_PLACEMENT_NAME = re.compile(PLACEMENT_NAME)


class UnknownPlacement(LookupError):
    """No placement of that name in these settings."""


def _placements(value: object) -> object:
    """`name=target,name=target`: each target a database URL, a Cloud SQL instance connection
    name or an AlloyDB instance URI (SPEC §9). Names are unique; a target cannot contain a comma."""
    if not isinstance(value, str):
        return value
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        name, equals, target = (part.strip() for part in item.partition("="))
        if not equals or not target or not _PLACEMENT_NAME.fullmatch(name):
            raise ValueError(
                f"must be name=<database URL or instance connection name>, comma separated, "
                f"each name {PLACEMENT_NAME}"
            )
        if name in dict(pairs):
            raise ValueError(f"names the placement {name} twice")
        pairs.append((name, target))
    return tuple(pairs)


Placements = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_placements)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Milliseconds = Annotated[int, Field(ge=0, le=3_600_000)]  # 0 turns the bound off
RetentionDays = Annotated[int, Field(ge=MIN_RETENTION_DAYS, le=36_500)]


@dataclass(frozen=True)
class Settings:
    """Every setting, each checked where it is declared (a boolean is true/false/1/0/yes/no/
    on/off and nothing else, a number is in its range, a choice is one of its values): a
    pydantic dataclass, so the ARUS_* variables and settings made in code are held to the same
    rules."""

    database_url: str | None = None
    cloudsql_instance: str | None = None
    alloydb_instance: str | None = None  # projects/P/locations/R/clusters/C/instances/I
    db_name: str = "arus"
    db_user: str = "arus"
    db_password: str | None = None
    db_password_secret: str | None = None
    db_iam_auth: bool = False
    db_ip_type: Literal["public", "private", "psc"] = "public"
    db_pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    db_max_overflow: Annotated[int, Field(ge=0, le=100)] = 2
    # Bounds on every session (0 turns one off): a statement, a lock wait, an idle transaction.
    db_statement_timeout_ms: Milliseconds = 10_000
    db_lock_timeout_ms: Milliseconds = 5_000
    db_idle_in_transaction_timeout_ms: Milliseconds = 30_000
    outbox_transport: Literal["log", "kafka", "pubsub"] = "log"
    kafka_bootstrap: str | None = None
    kafka_topic: str = "arus.ledger.events"
    pubsub_topic: str | None = None
    relay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    relay_time_budget_s: Annotated[float, Field(gt=0, le=3600)] = 50.0
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    max_batch_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 8 * 1024 * 1024
    log_format: Literal["json", "text"] = "text"
    log_level: LogLevel = "INFO"
    # Traces (platform/telemetry.py): where spans go (none: nowhere; console: standard error;
    # gcp: Cloud Trace), and the project that names a trace in a log line
    # (projects/<trace_project>/traces/<id>; unset with gcp: the credentials' project).
    trace_exporter: Literal["none", "console", "gcp"] = "none"
    trace_project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9.:-]{4,62}$")] | None = None
    # Retention in days (None: keep): idempotency claims, and published outbox rows.
    idempotency_retention_days: RetentionDays | None = None
    outbox_retention_days: RetentionDays | None = None
    # Bearer token for the job routes of `arus serve` (unset: they are not served). The relay
    # and daily_close functions on Google Cloud are gated by IAM instead.
    operator_token: Annotated[str, Field(min_length=32)] | None = field(default=None, repr=False)
    # The relay's and the close's own logins (SPEC §3.6) for a process that runs them beside
    # the API (`arus serve`, `arus dev`); a function on Google Cloud has its own settings.
    relay_database_url: str | None = field(default=None, repr=False)
    close_database_url: str | None = field(default=None, repr=False)
    # Ledgers placed on several primaries (SPEC §9): `name=target,...`; empty, one placement
    # (`main`) from the settings above. The relay's and the close's placements are their own
    # logins to the same primaries, in the same order, as the two URLs above are.
    placements: Placements = field(default=(), repr=False)
    relay_placements: Placements = field(default=(), repr=False)
    close_placements: Placements = field(default=(), repr=False)
    placement: Annotated[str, Field(pattern=f"^{PLACEMENT_NAME}$")] = MAIN_PLACEMENT

    @field_validator("db_ip_type", "outbox_transport", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def for_job(self, job: str) -> Settings:
        """These settings as the relay's or the close's login: its own URL (or placements)
        when one is set."""
        url = {"relay": self.relay_database_url, "close": self.close_database_url}[job]
        placements = {"relay": self.relay_placements, "close": self.close_placements}[job]
        if placements:
            return dataclasses.replace(self, placements=placements)
        return self if url is None else dataclasses.replace(self, database_url=url)

    @property
    def placement_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.placements) or (MAIN_PLACEMENT,)

    def for_placement(self, name: str) -> Settings:
        """The settings of one placement's database; UnknownPlacement if there is none."""
        if not self.placements:
            if name != MAIN_PLACEMENT:
                raise UnknownPlacement(name)
            return self
        if name not in self.placement_names:
            raise UnknownPlacement(name)
        return _placed(self, name)

    def each_placement(self) -> list[Settings]:
        return [self.for_placement(name) for name in self.placement_names]


@functools.cache  # per request on the API's path: validating a copy of the settings takes ~15 µs
def _placed(settings: Settings, name: str) -> Settings:
    """`settings` for the database of the placement `name` (one it names)."""
    target = dict(settings.placements)[name]
    # A URL, an AlloyDB instance URI (projects/…), or a Cloud SQL connection name (P:R:I).
    url = target if "://" in target else None
    alloydb = target if url is None and target.startswith("projects/") else None
    cloudsql = target if url is None and alloydb is None else None
    return dataclasses.replace(
        settings, database_url=url, cloudsql_instance=cloudsql, alloydb_instance=alloydb,
        placement=name, placements=(), relay_placements=(), close_placements=(),
    )  # fmt: skip


_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))

# Values never repeated in an error: they are, or may carry, a credential.
_SECRET = frozenset({"db_password", "operator_token", "database_url", "relay_database_url",
                     "close_database_url", "placements", "relay_placements",
                     "close_placements"})  # fmt: skip


def _problem(error: Mapping[str, Any]) -> str:
    """One validation error as the variable it is about and what it must be."""
    field_name = str(error["loc"][0]) if error["loc"] else "*"
    shown = "" if field_name in _SECRET else f" (got {error.get('input')!r})"
    return f"ARUS_{field_name.upper()}: {error['msg']}{shown}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the ARUS_* variables; raises ConfigError naming each variable that is
    not as it must be (a typo is an error, never a default)."""
    env = os.environ if env is None else env
    given = {k[len("ARUS_") :].lower(): v for k, v in env.items() if k.upper().startswith("ARUS_")}
    values: dict[str, Any] = {n: v for n, v in given.items() if n in _FIELDS and v != ""}
    # Cloud Run sets K_SERVICE: log JSON there so Cloud Logging reads severity and fields.
    if "log_format" not in values and env.get("K_SERVICE"):
        values["log_format"] = "json"
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(e) for e in exc.errors())) from None
