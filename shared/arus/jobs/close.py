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

All of it is one call, `arus_close_day` (ledger/sql/close.sql), run by the close's role: the
report is computed inside the database from the journal, its date bounds are checked there,
and the caller passes nothing but the ledger and the day (SPEC §3.6).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus import errors
from arus.admin import ledgers
from arus.jobs import Progress, every
from arus.ledger.commands import today_utc
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.platform.placements import everywhere

log = logging.getLogger("arus.jobs.close")

_CLOSE_DAY = sa.text("SELECT arus_close_day(:ledger, :day)")


def _cutoff(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


def close_ledger(engine: Engine, ledger_id: uuid.UUID, day: dt.date) -> dict[str, Any]:
    """Close one ledger's day; idempotent per (ledger, day). Raises ValidationError for a day
    before the ledger existed or not yet over (the database judges both, on its own clock)."""
    with errors.domain_errors(), engine.begin() as conn:
        report: dict[str, Any] = conn.execute(
            _CLOSE_DAY, {"ledger": ledger_id, "day": day}
        ).scalar_one()
    if report["ok"]:
        log.info("daily close", extra={"close": report})
    else:
        log.error("daily close failed", extra={"close": report})
    return report


def close_all(
    settings: Settings, day: dt.date | None = None, *, progress: Progress = every
) -> list[dict[str, Any]]:
    """Close `day` (default: yesterday, UTC) for every ledger that existed on that day, on
    every placement; `progress` wraps the ledgers as they are closed (the CLI's bar on a
    terminal). A placement that cannot be reached is one report, not ok, naming its error:
    the other placements still close."""
    day = day or today_utc() - dt.timedelta(days=1)

    def close_placement(placement: Settings) -> list[dict[str, Any]]:
        engine = get_engine(placement)
        with engine.connect() as conn:
            ids = ledgers.ledger_ids(conn, created_before=_cutoff(day))
        where = placement.placement
        return [{**close_ledger(engine, ledger_id, day), "placement": where}
                for ledger_id in progress(ids, f"closing {day} on {where}")]  # fmt: skip

    closed = everywhere(settings.for_job("close"), close_placement, what="daily close")
    reports = [report for placement in closed.done.values() for report in placement]
    return reports + [{"placement": name, "ok": False, "error": error}
                      for name, error in closed.failed.items()]  # fmt: skip
