"""Issuing and revoking API keys (administration, never on the request path).

The key's format and how it is checked live in `arus.ledger.access`; only its hash is stored.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from arus.errors import NotFound, ValidationError
from arus.ledger.access import SCOPES, Scope, format_key, hash_secret
from arus.ledger.schema import api_keys, ledgers
from arus.platform.config import MAIN_PLACEMENT


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    key: str
    scope: Scope


def issue_key(
    conn: Connection, *, ledger_id: uuid.UUID, scope: Scope, placement: str = MAIN_PLACEMENT
) -> IssuedKey:
    """A new key of a ledger on `placement` (the database `conn` is connected to)."""
    if scope not in SCOPES:
        raise ValidationError("scope must be read or write")
    exists = conn.execute(sa.select(ledgers.c.id).where(ledgers.c.id == ledger_id)).first()
    if exists is None:
        raise NotFound(f"no ledger {ledger_id}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        api_keys.insert().values(
            id=key_id, ledger_id=ledger_id, scope=scope, secret_hash=hash_secret(secret)
        )
    )
    return IssuedKey(key_id=key_id, key=format_key(placement, key_id, secret), scope=scope)


def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key at once; returns False when no such (unrevoked) key exists."""
    result = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.clock_timestamp())
    )
    return result.rowcount == 1
