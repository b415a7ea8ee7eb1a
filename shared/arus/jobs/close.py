"""The daily close: end-of-day balance snapshots and the proof that the books net to zero.

For one ledger and one UTC date, the close takes every account's balance at the end of that
date (the `balance_after` of its last posting booked before midnight), checks that the
snapshot nets to zero per currency, that each snapshot balance equals the sum of that
account's postings up to midnight, and that today's materialized balances have no drift.
Only a clean close is stored, with its snapshot and a `ledger.closed` outbox event, all in one
transaction; a rerun returns the stored report and writes nothing. A close that finds drift
stores nothing, is logged as an error and reported as failed, so it can be rerun once fixed.

A closed day stays closed (SPEC §3.3): the engine refuses entries dated on or before a ledger's
last close (`period_closed`). The close holds the ledger's close lock exclusively while it runs;
back-dated entries take it shared, so none is judged against a close that is not yet visible.
Only a day that is over can be closed, and not a day before the ledger existed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from arus.admin import ledgers
from arus.errors import ValidationError
from arus.ledger import reads
from arus.ledger.access import KnownLedger
from arus.ledger.commands import today_utc
from arus.platform.config import Settings
from arus.platform.db import get_engine

log = logging.getLogger("arus.jobs.close")

# Entries are stamped a moment before they commit; waiting this long after midnight means
# every entry stamped before midnight has committed (or rolled back) before the close reads.
CLOSE_GRACE = dt.timedelta(minutes=1)

_SNAPSHOT = sa.text("""
    SELECT a.id AS account_id, a.code, a.currency, b.normal_side,
           coalesce((SELECT p.balance_after FROM postings p
                     WHERE p.account_id = a.id AND p.created_at < :cutoff
                     ORDER BY p.created_at DESC, p.id DESC LIMIT 1), 0) AS balance,
           coalesce((SELECT sum(CASE WHEN p.direction = b.normal_side
                                     THEN p.amount::numeric ELSE -p.amount::numeric END)
                     FROM postings p
                     WHERE p.account_id = a.id AND p.created_at < :cutoff), 0) AS postings_sum,
           (SELECT coalesce(max(ledger_seq), 0) FROM entries
            WHERE ledger_id = :ledger AND created_at < :cutoff) AS last_ledger_seq
    FROM accounts a JOIN balances b ON b.account_id = a.id
    WHERE a.ledger_id = :ledger AND a.created_at < :cutoff
    ORDER BY a.code
""")


def _cutoff(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


def _stored_report(conn: Connection, ledger_id: uuid.UUID, day: dt.date) -> dict[str, Any] | None:
    report = conn.execute(
        sa.text("SELECT report FROM daily_closes WHERE ledger_id = :ledger AND close_date = :day"),
        {"ledger": ledger_id, "day": day},
    ).scalar_one_or_none()
    return report


def build_report(
    conn: Connection, ledger_id: uuid.UUID, day: dt.date
) -> tuple[dict[str, Any], Sequence[Any]]:
    """The close report for (ledger, day) and the snapshot rows it is computed from."""
    rows = conn.execute(_SNAPSHOT, {"ledger": ledger_id, "cutoff": _cutoff(day)}).all()
    totals: dict[str, dict[str, int]] = {}
    drift = []
    for row in rows:
        debit_side = int(row.balance) if row.normal_side == "debit" else -int(row.balance)
        total = totals.setdefault(row.currency, {"debit": 0, "credit": 0})
        total["debit"] += max(debit_side, 0)
        total["credit"] += max(-debit_side, 0)
        if int(row.postings_sum) != int(row.balance):
            drift.append(
                {
                    "account_id": str(row.account_id),
                    "account_code": row.code,
                    "snapshot_balance": int(row.balance),
                    "postings_balance": int(row.postings_sum),
                }
            )
    # Today's materialized balances must match their postings too: drift is drift, whenever.
    drift.extend(reads.trial_balance(KnownLedger(ledger_id), conn)["drift"])
    balanced = all(t["debit"] == t["credit"] for t in totals.values())
    report: dict[str, Any] = {
        "ledger_id": str(ledger_id),
        "date": day.isoformat(),
        "accounts": len(rows),
        "last_ledger_seq": int(rows[0].last_ledger_seq) if rows else 0,
        "totals": [
            {"currency": c, "debit": t["debit"], "credit": t["credit"]}
            for c, t in sorted(totals.items())
        ],
        "balanced": balanced,
        "drift": drift,
        "ok": balanced and not drift,
    }
    return report, rows


def close_ledger(
    engine: Engine, ledger_id: uuid.UUID, day: dt.date, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Close one ledger's day; idempotent per (ledger, day)."""
    now = now or dt.datetime.now(dt.UTC)
    if now < _cutoff(day) + CLOSE_GRACE:
        raise ValidationError(
            f"{day.isoformat()} can be closed from {(_cutoff(day) + CLOSE_GRACE).isoformat()}"
        )
    with engine.begin() as conn:
        # The ledger's close lock, which the engine takes shared for back-dated entries:
        # concurrent closes queue here too, and the loser reads the winner's report.
        conn.execute(sa.text("SELECT arus_close_lock(:ledger, true)"), {"ledger": ledger_id})
        stored = _stored_report(conn, ledger_id, day)
        if stored is not None:
            return stored
        created = conn.execute(
            sa.text("SELECT (created_at AT TIME ZONE 'UTC')::date FROM ledgers WHERE id = :l"),
            {"l": ledger_id},
        ).scalar_one()
        if day < created:
            raise ValidationError(
                f"{day.isoformat()} is before the ledger existed (created {created.isoformat()})"
            )
        report, rows = build_report(conn, ledger_id, day)
        if not report["ok"]:
            log.error("daily close failed", extra={"close": report})
            return report
        # The job's role writes no table itself: the owner's function stores the close.
        conn.execute(
            sa.text(
                "SELECT arus_store_close(:ledger, :day, CAST(:report AS json), "
                "CAST(:snapshot AS jsonb))"
            ),
            {
                "ledger": ledger_id,
                "day": day,
                "report": json.dumps(report),
                "snapshot": json.dumps(
                    [
                        {
                            "account_id": str(row.account_id),
                            "currency": row.currency,
                            "balance": int(row.balance),
                        }
                        for row in rows
                    ]
                ),
            },
        )
    log.info("daily close", extra={"close": report})
    return report


def close_all(settings: Settings, day: dt.date | None = None) -> list[dict[str, Any]]:
    """Close `day` (default: yesterday, UTC) for every ledger that existed on that day."""
    day = day or today_utc() - dt.timedelta(days=1)
    engine = get_engine(settings)
    with engine.connect() as conn:
        ids = ledgers.ledger_ids(conn, created_before=_cutoff(day))
    return [close_ledger(engine, ledger_id, day) for ledger_id in ids]
