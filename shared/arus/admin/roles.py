"""A runtime's database user: a login role that is a member of one job's role (admin/grants.py:
`arus_app` for the API, `arus_relay`, `arus_close`) and nothing else. Run as the owner;
idempotent.

The user may already exist, made elsewhere: Terraform creates it through the Cloud SQL Admin
API, which makes every user a member of `cloudsqlsuperuser` with CREATEDB and CREATEROLE. So
every other membership and those attributes are taken away, and the result is checked: the
command fails, naming what is left, rather than leave the ledger served by a privileged user.
A user that may create temporary objects is refused too (a temp table must never be able to
stand in for a ledger table); one that may create large objects is reported, since only a
superuser can take that from PUBLIC."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus.admin.grants import LARGE_OBJECT_FUNCTIONS, ROLES
from arus.errors import ValidationError
from arus.platform.config import ConfigError

APP_ROLE = ROLES["api"]
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PrivilegedUser(ConfigError):
    """The application's user keeps privileges it must not have (the deployment is wrong)."""


def ensure_app_user(
    engine: Engine, name: str, password: str | None = None, *, role: str = "api"
) -> bool:
    """Create login role `name` if missing (with `password`, if given, else for trust or IAM
    authentication), set its password when given, and make it a member of the `role` job's
    group role only (api, relay or close). Returns True when the role was created; raises
    PrivilegedUser if it keeps more."""
    if role not in ROLES:
        raise ValidationError(f"the role is one of {', '.join(ROLES)}, not {role!r}")
    group = ROLES[role]
    if not _ROLE_NAME.fullmatch(name) or name in ROLES.values():
        raise ValidationError("the user name is 1-63 of a-z 0-9 _ (not a job's role itself)")
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
        conn.exec_driver_sql(f'GRANT {group} TO "{name}"')
        for other in memberships(conn, name):
            if other != group:
                conn.exec_driver_sql(f'REVOKE "{other}" FROM "{name}"')
        conn.exec_driver_sql(f'ALTER ROLE "{name}" NOCREATEDB NOCREATEROLE')
        left = excess_privileges(conn, name, group)
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
    SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,
           has_database_privilege(:name, current_database(), 'TEMPORARY')
    FROM pg_roles WHERE rolname = :name
""")


def memberships(conn: sa.Connection, name: str) -> list[str]:
    """The roles user `name` is a member of, by name."""
    return list(conn.execute(_MEMBERSHIPS, {"name": name}).scalars())


def excess_privileges(conn: sa.Connection, name: str, group: str = APP_ROLE) -> list[str]:
    """What user `name` holds beyond membership in `group`: other roles, role attributes, and
    TEMPORARY on this database."""
    left = [f"membership in {other}" for other in memberships(conn, name) if other != group]
    row = conn.execute(_ATTRIBUTES, {"name": name}).one()
    left += [attribute for attribute, held in zip(
        ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS", "TEMPORARY"), row,
        strict=True,
    ) if held]  # fmt: skip
    return left


def large_object_functions(conn: sa.Connection, name: str) -> list[str]:
    """The large-object constructors user `name` may still execute (through PUBLIC)."""
    return [
        function
        for function in LARGE_OBJECT_FUNCTIONS
        if conn.execute(
            sa.text("SELECT has_function_privilege(:name, :function, 'EXECUTE')"),
            {"name": name, "function": function},
        ).scalar_one()
    ]
