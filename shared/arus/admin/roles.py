"""The application's database user: a login role that is a member of `arus_app` (migration
0005) and nothing else. Run as the owner; idempotent.

The user may already exist, made elsewhere: Terraform creates it through the Cloud SQL Admin
API, which makes every user a member of `cloudsqlsuperuser` with CREATEDB and CREATEROLE. So
every other membership and those attributes are taken away, and the result is checked: the
command fails, naming what is left, rather than leave the ledger served by a privileged user."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus.errors import ValidationError
from arus.platform.config import ConfigError

APP_ROLE = "arus_app"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PrivilegedUser(ConfigError):
    """The application's user keeps privileges it must not have (the deployment is wrong)."""


def ensure_app_user(engine: Engine, name: str, password: str | None = None) -> bool:
    """Create login role `name` if missing (with `password`, if given, else for trust or IAM
    authentication), set its password when given, and make it a member of arus_app only.
    Returns True when the role was created; raises PrivilegedUser if it keeps more."""
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
        for other in memberships(conn, name):
            if other != APP_ROLE:
                conn.exec_driver_sql(f'REVOKE "{other}" FROM "{name}"')
        conn.exec_driver_sql(f'ALTER ROLE "{name}" NOCREATEDB NOCREATEROLE')
        left = excess_privileges(conn, name)
    if left:
        raise PrivilegedUser(f"{name} still has {', '.join(left)}: it must not serve the ledger")
    return exists is None


_MEMBERSHIPS = sa.text("""
    SELECT granted.rolname FROM pg_auth_members m
    JOIN pg_roles granted ON granted.oid = m.roleid
    JOIN pg_roles member ON member.oid = m.member
    WHERE member.rolname = :name
    ORDER BY granted.rolname
""")
_ATTRIBUTES = sa.text("""
    SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
    FROM pg_roles WHERE rolname = :name
""")


def memberships(conn: sa.Connection, name: str) -> list[str]:
    """The roles user `name` is a member of, by name."""
    return list(conn.execute(_MEMBERSHIPS, {"name": name}).scalars())


def excess_privileges(conn: sa.Connection, name: str) -> list[str]:
    """What user `name` holds beyond membership in arus_app: other roles, role attributes."""
    left = [f"membership in {other}" for other in memberships(conn, name) if other != APP_ROLE]
    row = conn.execute(_ATTRIBUTES, {"name": name}).one()
    left += [attribute for attribute, held in zip(
        ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"), row, strict=True
    ) if held]  # fmt: skip
    return left
