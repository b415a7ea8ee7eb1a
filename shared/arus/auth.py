"""API keys: generated once, stored only as a hash, compared in constant time (SPEC §3).

A key reads `arus_<key id>_<secret>`: the 16-hex-digit id finds the row, the 256-bit secret
proves possession. The secret is random, so a fast hash (sha256) is as strong as a slow one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from arus.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from arus.schema import api_keys, ledgers

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
_KEY = re.compile(r"arus_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_BEARER = re.compile(r"Bearer[ \t]+([!-~]{1,200})", re.IGNORECASE)  # schemes are case-insensitive
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"arus-no-such-key").digest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: one ledger, one scope. Every query is filtered by `ledger_id`."""

    key_id: str
    ledger_id: uuid.UUID
    scope: Scope

    def require_write(self) -> None:
        if self.scope != "write":
            raise Forbidden("this API key is read-only; mutations need a write key")


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


def authenticate(conn: Connection, authorization: str | None) -> Principal:
    """The principal behind an `Authorization: Bearer` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <api key> header")
    bearer = _BEARER.fullmatch(authorization.strip())
    parts = _KEY.fullmatch(bearer.group(1)) if bearer else None
    if parts is None:
        raise Unauthenticated("malformed API key")
    key_id, secret = parts.groups()
    row = conn.execute(
        sa.select(api_keys.c.ledger_id, api_keys.c.scope, api_keys.c.secret_hash).where(
            api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
        )
    ).first()
    stored = bytes(row.secret_hash) if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored, _hash(secret)) or row is None:
        raise Unauthenticated("unknown or revoked API key")
    return Principal(key_id=key_id, ledger_id=row.ledger_id, scope=row.scope)
