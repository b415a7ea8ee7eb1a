"""`arus verify`: prove every ledger's books: balanced, no drift, a gap-free ledger_seq."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from arus.admin import ledgers
from arus.ledger import reads
from arus.ledger.access import KnownLedger
from arus.ledger.schema import entries
from arus.ledger.schema import ledgers as ledgers_table


def verify_ledger(conn: Connection, ledger_id: Any) -> dict[str, Any]:
    trial = reads.trial_balance(KnownLedger(ledger_id), conn)
    stats = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(entries.c.ledger_seq), 0)).where(
            entries.c.ledger_id == ledger_id
        )
    ).one()
    last_seq = conn.execute(
        sa.select(ledgers_table.c.last_ledger_seq).where(ledgers_table.c.id == ledger_id)
    ).scalar_one()
    entry_count, max_seq = int(stats[0]), int(stats[1])
    gap_free = entry_count == max_seq == int(last_seq)
    return {
        "ledger_id": str(ledger_id),
        "accounts": len(trial["accounts"]),
        "entries": entry_count,
        "balanced": trial["balanced"],
        "totals": trial["totals"],
        "drift": trial["drift"],
        "ledger_seq_gap_free": gap_free,
        "ok": trial["balanced"] and not trial["drift"] and gap_free,
    }


def verify_all(engine: Engine) -> dict[str, Any]:
    """One report for every ledger; `ok` is false on any imbalance, drift or sequence gap."""
    with engine.connect() as conn:
        # One snapshot for the whole report, while writers keep posting.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reports = [verify_ledger(conn, ledger_id) for ledger_id in ledgers.ledger_ids(conn)]
    return {"ok": all(r["ok"] for r in reports), "ledgers": reports}
