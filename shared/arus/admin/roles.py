"""The application's database user: a login role that is a member of `arus_app` (migration
0005) and nothing else. Run as the owner; idempotent."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus.errors import ValidationError

APP_ROLE = "arus_app"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def ensure_app_user(engine: Engine, name: str, password: str | None = None) -> bool:
    """Create login role `name` if missing (with `password`, if given, else for trust or IAM
    authentication), set its password when given, and make it a member of arus_app only.
    Returns True when the role was created."""
    if not _ROLE_NAME.fullmatch(name) or name == APP_ROLE:
        raise ValidationError("the user name is 1-63 of a-z 0-9 _ (not arus_app itself)")
    with engine.begin() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
        ).first()
        if exists is None:
            conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        if password is not None:
            # A parameter cannot carry a password in DDL: quote it as a literal, server-side.
            literal = conn.execute(sa.text("SELECT quote_literal(:p)"), {"p": password}).scalar()
            conn.exec_driver_sql(f'ALTER ROLE "{name}" PASSWORD {literal}')
        conn.exec_driver_sql(f'GRANT {APP_ROLE} TO "{name}"')
    return exists is None
