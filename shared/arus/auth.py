"""API keys: generated once, stored only as a hash (SPEC §3).

A key reads `arus_<key id>_<secret>`: the 16-hex-digit id finds the row, the 256-bit secret
proves possession. The secret is random, so a fast hash (sha256) is as strong as a slow one,
and the database compares hashes, never secrets: how long a comparison of sha256(guess) with
the stored hash takes says nothing an attacker can turn into a better guess (ADR-005).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import Connection

from arus.errors import NotFound, Unauthenticated, ValidationError
from arus.schema import api_keys, ledgers

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
_KEY = re.compile(r"arus_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_BEARER = re.compile(r"Bearer[ \t]+([!-~]{1,200})", re.IGNORECASE)  # schemes are case-insensitive


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    key: str
    scope: Scope


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def issue_key(conn: Connection, *, ledger_id: uuid.UUID, scope: Scope) -> IssuedKey:
    if scope not in SCOPES:
        raise ValidationError("scope must be read or write")
    exists = conn.execute(sa.select(ledgers.c.id).where(ledgers.c.id == ledger_id)).first()
    if exists is None:
        raise NotFound(f"no ledger {ledger_id}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        api_keys.insert().values(
            id=key_id, ledger_id=ledger_id, scope=scope, secret_hash=_hash(secret)
        )
    )
    return IssuedKey(key_id=key_id, key=f"arus_{key_id}_{secret}", scope=scope)


def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key at once; returns False when no such (unrevoked) key exists."""
    result = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.clock_timestamp())
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Credentials:
    """A well-formed key from the request: its id and the sha256 of its secret.

    Whether the key exists, is unrevoked and may write is decided by the database in the same
    call as the work (`arus_authorize`, ledger/sql/access.sql): one round trip per request, and
    a revoked key fails on the very next one.
    """

    key_id: str
    secret_hash: bytes

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
    key_id, secret = parts.groups()
    return Credentials(key_id=key_id, secret_hash=_hash(secret))


_AUTHORIZE = sa.text("SELECT arus_authorize(:key_id, :secret_hash, :scope)").columns(
    sa.column("ledger_id", UUID(as_uuid=True))
)


def authorize(conn: Connection, credentials: Credentials, *, scope: Scope) -> uuid.UUID:
    """The ledger these credentials may use with `scope`; Unauthenticated or Forbidden else."""
    from arus.errors import from_database

    try:
        ledger_id = conn.execute(_AUTHORIZE, {**credentials.as_params(), "scope": scope})
        return uuid.UUID(str(ledger_id.scalar_one()))
    except sa.exc.DBAPIError as exc:
        domain = from_database(exc.orig) if exc.orig is not None else None
        if domain is None:
            raise
        raise domain from None
