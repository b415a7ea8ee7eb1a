"""`arus verify`: prove every ledger's books: balanced, no drift, a gap-free ledger_seq, pending
totals equal to their holds (SPEC §3.2), and every close's seal recomputed from the journal as
it is now (SPEC §3.5): the first close whose journal no longer matches its seal is named."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from arus.admin import ledgers
from arus.jobs import Progress, every
from arus.ledger import reads
from arus.ledger.access import KnownLedger
from arus.ledger.schema import entries
from arus.ledger.schema import ledgers as ledgers_table
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.platform.placements import everywhere

# Every account whose materialized pending totals differ from its holds, and every hold that is
# not exactly a line of an unresolved pending entry (or such a line without its hold).
_PENDING_DRIFT = sa.text("""
    SELECT a.code AS account_code, b.pending_debits, b.pending_credits,
           coalesce(h.debits, 0) AS hold_debits, coalesce(h.credits, 0) AS hold_credits
    FROM accounts a JOIN balances b ON b.account_id = a.id
    LEFT JOIN (
        SELECT account_id,
               sum(amount) FILTER (WHERE direction = 'debit') AS debits,
               sum(amount) FILTER (WHERE direction = 'credit') AS credits
        FROM holds WHERE ledger_id = :ledger GROUP BY account_id
    ) h ON h.account_id = a.id
    WHERE a.ledger_id = :ledger
      AND (b.pending_debits <> coalesce(h.debits, 0) OR b.pending_credits <> coalesce(h.credits, 0))
    ORDER BY a.code
""")
_STRAY_HOLDS = sa.text("""
    SELECT count(*) FROM (
        (SELECT p.entry_id, p.position, p.account_id, p.direction, p.amount
         FROM pending_postings p
         WHERE p.ledger_id = :ledger
           AND NOT EXISTS (SELECT 1 FROM pending_outcomes o WHERE o.entry_id = p.entry_id)
         EXCEPT ALL
         SELECT entry_id, position, account_id, direction, amount FROM holds
         WHERE ledger_id = :ledger)
        UNION ALL
        (SELECT entry_id, position, account_id, direction, amount FROM holds
         WHERE ledger_id = :ledger
         EXCEPT ALL
         SELECT p.entry_id, p.position, p.account_id, p.direction, p.amount
         FROM pending_postings p
         WHERE p.ledger_id = :ledger
           AND NOT EXISTS (SELECT 1 FROM pending_outcomes o WHERE o.entry_id = p.entry_id))
    ) stray
""")


# Accounts whose version is not the count of their postings, or whose postings' versions are not
# 1..version (SPEC §3.5: each posting records the version it made).
_VERSION_DRIFT = sa.text("""
    SELECT count(*) FROM balances b
    CROSS JOIN LATERAL (
        SELECT count(*) AS postings, count(DISTINCT p.account_version) AS versions,
               coalesce(max(p.account_version), 0) AS last
        FROM postings p WHERE p.account_id = b.account_id
    ) p
    WHERE b.ledger_id = :ledger
      AND NOT (b.posting_count = p.postings AND p.versions = p.postings AND p.last = p.postings)
""")


def verify_pending(conn: Connection, ledger_id: Any) -> dict[str, Any]:
    """Pending totals equal the holds, and the holds are the unresolved pending lines."""
    drift = [
        {
            "account_code": row.account_code,
            "pending_debits": int(row.pending_debits),
            "pending_credits": int(row.pending_credits),
            "holds_debits": int(row.hold_debits),
            "holds_credits": int(row.hold_credits),
        }
        for row in conn.execute(_PENDING_DRIFT, {"ledger": ledger_id})
    ]
    stray = int(conn.execute(_STRAY_HOLDS, {"ledger": ledger_id}).scalar_one())
    return {"pending_drift": drift, "stray_holds": stray}


# Each close's seal beside the seal of its journal recomputed now, in close order: the same
# window the close sealed (the entries after the previous close's last_ledger_seq through its
# own, the outcomes resolved after the previous close through it) from the previous stored seal.
_SEALS = sa.text("""
    SELECT c.close_date, c.seal,
           arus_journal_seal(c.ledger_id,
                             lag(c.seal) OVER w,
                             coalesce(lag(c.last_ledger_seq) OVER w, 0), c.last_ledger_seq,
                             coalesce(lag(c.closed_at) OVER w, '-infinity'), c.closed_at)
               AS recomputed
    FROM daily_closes c
    WHERE c.ledger_id = :ledger
    WINDOW w AS (ORDER BY c.close_date)
    ORDER BY c.close_date
""")


def verify_seals(conn: Connection, ledger_id: Any) -> dict[str, Any]:
    """Every close's seal, recomputed; the first close whose journal changed, if any."""
    closes = conn.execute(_SEALS, {"ledger": ledger_id}).all()
    broken = next(
        (row.close_date.isoformat() for row in closes if row.seal != row.recomputed), None
    )
    return {"closes_sealed": len(closes), "seal_broken_at": broken}


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
    pending = verify_pending(conn, ledger_id)
    pending_ok = not pending["pending_drift"] and pending["stray_holds"] == 0
    seals = verify_seals(conn, ledger_id)
    version_drift = int(conn.execute(_VERSION_DRIFT, {"ledger": ledger_id}).scalar_one())
    return {
        "ledger_id": str(ledger_id),
        "accounts": len(trial["accounts"]),
        "entries": entry_count,
        "balanced": trial["balanced"],
        "totals": trial["totals"],
        "drift": trial["drift"],
        "ledger_seq_gap_free": gap_free,
        **pending,
        **seals,
        "accounts_with_version_drift": version_drift,
        "ok": trial["balanced"]
        and not trial["drift"]
        and gap_free
        and pending_ok
        and seals["seal_broken_at"] is None
        and version_drift == 0,
    }


# The tables that grow with use, for the operations notes: bytes with indexes and TOAST.
SIZED_TABLES = ("entries", "postings", "pending_postings", "holds", "idempotency_keys",
                "outbox_events", "balance_snapshots")  # fmt: skip


def table_sizes(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.text("SELECT t, pg_total_relation_size(t::regclass) FROM unnest(CAST(:t AS text[])) t"),
        {"t": list(SIZED_TABLES)},
    ).all()
    return {name: int(size) for name, size in rows}


def verify_all(engine: Engine, *, progress: Progress = every) -> dict[str, Any]:
    """One report for every ledger; `ok` is false on any imbalance, drift, sequence gap,
    pending total that is not its holds, or close whose seal its journal no longer matches."""
    with engine.connect() as conn:
        # One snapshot for the whole report, while writers keep posting.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        ids = ledgers.ledger_ids(conn)
        reports = [verify_ledger(conn, ledger_id) for ledger_id in progress(ids, "verifying")]
        sizes = table_sizes(conn)
    return {"ok": all(r["ok"] for r in reports), "ledgers": reports, "table_bytes": sizes}


def verify_everywhere(settings: Settings, *, progress: Progress = every) -> dict[str, Any]:
    """`verify_all` on every placement, as one report: each ledger names its placement, the
    table sizes are summed, and a placement that cannot be reached makes the report not ok."""
    checked = everywhere(
        settings, lambda placement: verify_all(get_engine(placement), progress=progress),
        what="verify",
    )  # fmt: skip
    sizes: dict[str, int] = {}
    for report in checked.done.values():
        for table, size in report["table_bytes"].items():
            sizes[table] = sizes.get(table, 0) + size
    return {
        "ok": checked.ok and all(report["ok"] for report in checked.done.values()),
        "ledgers": [{**ledger, "placement": name} for name, report in checked.done.items()
                    for ledger in report["ledgers"]],
        "table_bytes": sizes,
        "placements": {**{name: "ok" if report["ok"] else "failed"
                          for name, report in checked.done.items()}, **checked.failed},
    }  # fmt: skip
