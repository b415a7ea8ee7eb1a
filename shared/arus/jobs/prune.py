"""`arus prune`: retention of idempotency claims and published outbox rows (opt-in).

The default keeps everything. With `ARUS_IDEMPOTENCY_RETENTION_DAYS` (at least 7) a claim
older than that no longer replays: a request retried after its window is a new request, so the
window must exceed every client's retry horizon. With `ARUS_OUTBOX_RETENTION_DAYS` published
events older than that are deleted; unpublished ones never are. The deletion is the owner's
function `arus_prune` (ledger/sql/operations.sql), which enforces the minimum again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa

from arus.errors import domain_errors
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.platform.placements import everywhere

log = logging.getLogger("arus.jobs.prune")


def prune(settings: Settings) -> dict[str, Any]:
    """Delete what the configured retention no longer keeps; returns the counts."""
    days = {
        "idempotency_days": settings.idempotency_retention_days,
        "outbox_days": settings.outbox_retention_days,
    }
    if all(value is None for value in days.values()):
        return {"idempotency_keys": 0, "outbox_events": 0, "retention": "keep"}
    with domain_errors(), get_engine(settings).begin() as conn:
        outcome = conn.execute(
            sa.text("SELECT arus_prune(:idempotency_days, :outbox_days)"), days
        ).scalar_one()
    counts: dict[str, Any] = json.loads(outcome) if isinstance(outcome, str) else dict(outcome)
    counts["retention"] = days
    log.info("prune", extra={"prune": counts})
    return counts


def prune_everywhere(settings: Settings) -> dict[str, Any]:
    """`prune` on every placement: the counts summed, each placement's own, and the
    placements that could not be reached (their error)."""
    pruned = everywhere(settings, prune, what="prune")
    return {
        "idempotency_keys": sum(c["idempotency_keys"] for c in pruned.done.values()),
        "outbox_events": sum(c["outbox_events"] for c in pruned.done.values()),
        "retention": next(iter(pruned.done.values()), {"retention": None})["retention"],
        "placements": {**pruned.done, **pruned.failed},
        "ok": pruned.ok,
    }
