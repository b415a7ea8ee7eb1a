"""The posting engine as reviewable SQL files, and how migrations apply them.

The engine (append-only guards, integrity checks, rendering, authorisation, posting) lives in
`sql/*.sql`: only `CREATE OR REPLACE FUNCTION`, no tables. A migration that changes the engine
first drops any function whose signature or return type changes, then calls `apply`, which runs
every file as it is now; so the change to review is the diff of the `.sql` file, and a fresh
database, which runs every migration, ends with the same functions as an upgraded one. Function
bodies are not checked at creation (`check_function_bodies = off`), so an early migration can
apply a file whose functions read tables a later migration creates.
`tests/integration/test_engine_sql.py` proves that the functions in a migrated database equal
these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).parent / "sql"
# Applied in this order: later files call functions of earlier ones.
ENGINE_FILES = (
    "append_only.sql",
    "integrity.sql",
    "rendering.sql",
    "access.sql",
    "judgement.sql",
    "posting.sql",
    "holds.sql",
    "operations.sql",
    "close.sql",
)


def engine_sql() -> str:
    return "\n".join((SQL_DIR / name).read_text() for name in ENGINE_FILES)


def apply(execute: Any) -> None:
    """Run the engine files through `execute` (alembic's `op.execute`, or a connection's)."""
    execute("SET LOCAL check_function_bodies = off")
    execute(engine_sql())
    execute("SET LOCAL check_function_bodies = on")
