"""API keys: generated once, stored only as a hash (SPEC §3).

A key reads `arus_<placement>_<key id>_<secret>`: the placement says which database holds its
ledger (SPEC §9; a key of the `main` placement leaves it out, as every key did before
placements), the 16-hex-digit id finds the row, the 256-bit secret proves possession. The
secret is random, so a fast hash (sha256) is as strong as a slow one, and the database compares
hashes, never secrets: how long a comparison of sha256(guess) with the stored hash takes says
nothing an attacker can turn into a better guess (ADR-005).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import Connection

from arus.errors import Unauthenticated, domain_errors
from arus.platform.config import MAIN_PLACEMENT, PLACEMENT_NAME

Scope = Literal["read", "write"]
T = TypeVar("T")
SCOPES: tuple[Scope, ...] = ("read", "write")
_KEY = re.compile(rf"arus_(?:({PLACEMENT_NAME})_)?([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
_BEARER = re.compile(r"Bearer[ \t]+([!-~]{1,200})", re.IGNORECASE)  # schemes are case-insensitive


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Credentials:
    """A well-formed key from the request: its id and the sha256 of its secret.

    Whether the key exists, is unrevoked and may write is decided by the database in the same
    call as the work (`arus_authorize`, ledger/sql/access.sql): one round trip per request, and
    a revoked key fails on the very next one.
    """

    key_id: str
    secret_hash: bytes
    placement: str = MAIN_PLACEMENT  # which database to ask (never sent to it)

    def as_params(self) -> dict[str, object]:
        return {"key_id": self.key_id, "secret_hash": self.secret_hash}


def parse_credentials(authorization: str | None) -> Credentials:
    """The credentials of an `Authorization: Bearer` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <api key> header")
    bearer = _BEARER.fullmatch(authorization.strip())
    parts = _KEY.fullmatch(bearer.group(1)) if bearer else None
    if parts is None:
        raise Unauthenticated("malformed API key")
    placement, key_id, secret = parts.groups()
    return Credentials(key_id, hash_secret(secret), placement or MAIN_PLACEMENT)


def format_key(placement: str, key_id: str, secret: str) -> str:
    named = "" if placement == MAIN_PLACEMENT else f"{placement}_"
    return f"arus_{named}{key_id}_{secret}"


_AUTHORIZE = sa.text("SELECT arus_authorize(:key_id, :secret_hash, :scope)").columns(
    sa.column("ledger_id", UUID(as_uuid=True))
)


def authorize(conn: Connection, credentials: Credentials, *, scope: Scope) -> uuid.UUID:
    """The ledger these credentials may use with `scope`; Unauthenticated or Forbidden else."""
    with domain_errors():
        ledger_id = conn.execute(_AUTHORIZE, {**credentials.as_params(), "scope": scope})
        return uuid.UUID(str(ledger_id.scalar_one()))


class LedgerScope(Protocol):
    """Whose ledger a read runs against: `ledger_id` is the SQL expression every read filters by."""

    @property
    def ledger_id(self) -> sa.ColumnElement[Any]: ...

    def fetch(self, conn: Connection, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]: ...

    def nested(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """`query`, for use as a subquery inside a fetched query that filters by `ledger_id`."""
        ...


@dataclass(frozen=True)
class KnownLedger:
    """A ledger the caller already holds (jobs, verify, the close): no authorisation."""

    id: uuid.UUID

    @property
    def ledger_id(self) -> sa.ColumnElement[Any]:
        return sa.literal(self.id, UUID(as_uuid=True))

    def fetch(self, conn: Connection, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        return conn.execute(query).all()

    def nested(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query


@dataclass(frozen=True)
class Caller:
    """The ledger of a request's credentials, authorised inside the read's own statement.

    `fetch` runs `SELECT q.*, caller.ledger_id FROM (SELECT arus_authorize(...) OFFSET 0)
    caller LEFT JOIN LATERAL (query) q ON true`: the one-row caller is the outer side of a
    nested loop, so the key is checked first and always, even when the query finds nothing,
    and the read costs one round trip.
    """

    credentials: Credentials
    scope: Scope
    _caller: sa.Subquery = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        authorised = sa.func.arus_authorize(
            sa.bindparam("arus_key_id", self.credentials.key_id),
            sa.bindparam("arus_secret_hash", self.credentials.secret_hash),
            sa.bindparam("arus_scope", self.scope),
            type_=UUID(as_uuid=True),
        )
        # OFFSET 0 keeps the subquery from being flattened into the query it guards.
        caller = sa.select(authorised.label("ledger_id")).offset(0).subquery("caller")
        object.__setattr__(self, "_caller", caller)

    @property
    def ledger_id(self) -> sa.ColumnElement[Any]:
        return self._caller.c.ledger_id

    def statement(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """`query` behind the key check, as `fetch` runs it."""
        # A LEFT JOIN that also returns the caller's column: PostgreSQL may drop a join it
        # proves empty (a WHERE false) or an output nobody reads, and then the key would go
        # unchecked. This way the caller's row is always computed, with q's columns NULL
        # when q finds nothing; `arus_row` tells those apart.
        scoped = query.add_columns(sa.literal(True).label("arus_row")).lateral("q")
        return sa.select(scoped, self._caller.c.ledger_id.label("arus_caller")).select_from(
            self._caller.outerjoin(scoped, sa.true())
        )

    def fetch(self, conn: Connection, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        with domain_errors():
            rows = conn.execute(self.statement(query)).all()
        return [row for row in rows if row.arus_row is not None]

    def nested(self, query: sa.Select[Any]) -> sa.Select[Any]:
        # The caller belongs to the outermost statement: refer to it, never repeat it.
        return query.correlate(self._caller)

    def check(self, conn: Connection) -> None:
        """Authorise alone: for a request refused before its query runs (401 before 422)."""
        authorize(conn, self.credentials, scope=self.scope)
