"""The relay: drains the outbox to the configured transport, at least once (SPEC §4).

Each batch is one transaction: claim up to `batch_size` unpublished rows in id order with
FOR UPDATE SKIP LOCKED, publish them and wait for every confirmation, then mark them published
and commit. A failure or a crash between publish and commit rolls the claim back, so the next
run publishes the batch again (consumers dedupe by event_id). Concurrent relays skip each
other's locked rows, so in normal operation no row is published twice.

Every run first sweeps expired holds (`gateway.expire_holds`): tidying only, since a hold stops
counting at its expires_at whether or not the sweep has run, but it releases the stored
reservation and emits the `entry.voided` events, which this same run then publishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from arus.ledger import gateway
from arus.ledger.schema import outbox_events
from arus.outbox.transports import OutboxEvent, PublishError, Transport, make_transport
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.platform.placements import everywhere

log = logging.getLogger("arus.outbox.relay")


@dataclass(frozen=True)
class RelayOutcome:
    published: int
    batches: int
    oldest_unpublished_age_s: float | None
    duration_s: float
    error: str | None = None
    holds_expired: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "holds_expired": self.holds_expired,
            "batches": self.batches,
            "oldest_unpublished_age_s": self.oldest_unpublished_age_s,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
        }


# The relay's role may not write the outbox itself: it claims and marks rows through the
# owner's functions (ledger/sql/operations.sql). The claim holds its row locks (FOR UPDATE SKIP
# LOCKED) until this transaction ends; the envelope comes as stored, as text, and is published
# without a decode/encode round trip.
_CLAIM_BATCH = sa.text(
    "SELECT id, event_id, event_type, ledger_id, envelope_json FROM arus_outbox_claim(:limit)"
)
_MARK_PUBLISHED = sa.text("SELECT arus_outbox_published(CAST(:ids AS bigint[]))")


def oldest_unpublished_age_s(engine: Engine) -> float | None:
    with engine.connect() as conn:
        age = conn.execute(
            sa.select(
                sa.func.extract(
                    "epoch", sa.func.clock_timestamp() - sa.func.min(outbox_events.c.occurred_at)
                )
            ).where(outbox_events.c.published_at.is_(None))
        ).scalar_one()
    return None if age is None else round(float(age), 3)


def drain(
    engine: Engine,
    transport: Transport,
    *,
    batch_size: int,
    time_budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    log_idle: bool = False,
) -> RelayOutcome:
    """Publish batches until the outbox is empty or the time budget is spent.

    A publish failure ends the run with `error` set and its batch left unpublished; it is
    reported, never swallowed. Each run logs one `relay run` line: at DEBUG when it published
    nothing and failed nothing, unless `log_idle` (a scheduled run, whose every line the
    outbox-lag metric and its alerts read).
    """
    assert 1 <= batch_size <= 10_000 and time_budget_s > 0
    started = clock()
    published = batches = 0
    error: str | None = None
    while clock() - started < time_budget_s:
        try:
            with engine.begin() as conn:
                rows = conn.execute(_CLAIM_BATCH, {"limit": batch_size}).all()
                if not rows:
                    break
                transport.publish(
                    [
                        OutboxEvent(
                            outbox_id=row.id,
                            event_id=str(row.event_id),
                            event_type=row.event_type,
                            ledger_id=str(row.ledger_id),
                            envelope_json=row.envelope_json,
                        )
                        for row in rows
                    ]
                )
                marked = conn.execute(
                    _MARK_PUBLISHED, {"ids": [row.id for row in rows]}
                ).scalar_one()
                assert marked == len(rows), "claimed rows are ours until this transaction ends"
        except PublishError as exc:
            error = f"{transport.name} publish failed: {exc}"
            log.error("relay batch rolled back: %s", error)
            break
        published += len(rows)
        batches += 1
        if len(rows) < batch_size:
            break
    outcome = RelayOutcome(
        published=published,
        batches=batches,
        oldest_unpublished_age_s=oldest_unpublished_age_s(engine),
        duration_s=clock() - started,
        error=error,
    )
    # Idle runs (every second under `arus dev`) log at DEBUG; work and errors stay visible.
    level = logging.INFO if published or error or log_idle else logging.DEBUG
    # Beside the outcome, the two figures the log-based metrics read, flat and never null
    # (terraform/modules/monitoring): the age in seconds of the oldest event still unpublished
    # after this run (0 when none is), and the events this run published.
    lag_s = outcome.oldest_unpublished_age_s or 0.0
    log.log(
        level,
        "relay run",
        extra={"relay": outcome.to_json(), "outbox_lag_s": lag_s, "events_published": published},
    )
    return outcome


def run_once(settings: Settings, transport: Transport | None = None) -> RelayOutcome:
    """One scheduled run: on every placement, expire the holds past their instant and drain the
    outbox (each placement's events in their order, through one transport). A placement that
    cannot be reached is this run's error; the others are drained."""
    settings = settings.for_job("relay")
    owned = transport is None
    transport = transport or make_transport(settings)
    try:

        def run_placement(placement: Settings) -> RelayOutcome:
            engine = get_engine(placement)
            expired = sweep_expired_holds(engine, limit=settings.relay_batch_size)
            outcome = drain(
                engine,
                transport,
                batch_size=settings.relay_batch_size,
                time_budget_s=settings.relay_time_budget_s,
                log_idle=True,
            )
            return replace(outcome, holds_expired=expired)

        ran = everywhere(settings, run_placement, what="relay")
        return _combined(list(ran.done.values()), ran.failed)
    finally:
        if owned:
            transport.close()


def _combined(outcomes: list[RelayOutcome], failed: dict[str, str]) -> RelayOutcome:
    """The placements' runs as one outcome: counts summed, the oldest lag, every error."""
    if len(outcomes) == 1 and not failed:
        return outcomes[0]
    ages = [o.oldest_unpublished_age_s for o in outcomes if o.oldest_unpublished_age_s is not None]
    errors = [o.error for o in outcomes if o.error] + [
        f"placement {name}: {error}" for name, error in failed.items()
    ]
    return RelayOutcome(
        published=sum(o.published for o in outcomes),
        batches=sum(o.batches for o in outcomes),
        oldest_unpublished_age_s=max(ages) if ages else None,
        duration_s=sum(o.duration_s for o in outcomes),
        error="; ".join(errors) or None,
        holds_expired=sum(o.holds_expired for o in outcomes),
    )


def sweep_expired_holds(engine: Engine, *, limit: int) -> int:
    """Expire up to `limit` holds past their instant; a failure is logged and left to the next
    run (nothing depends on the sweep having run)."""
    try:
        return gateway.expire_holds(engine, limit=limit)
    except sa.exc.DBAPIError as exc:
        log.warning("the expiry sweep failed; the next run retries: %s", exc)
        return 0


def run_forever(
    settings: Settings, *, interval_s: float = 1.0, stop: threading.Event | None = None
) -> None:
    """Drain, sleep `interval_s`, repeat until `stop` is set (the `arus dev` loop)."""
    settings = settings.for_job("relay")
    stop = stop or threading.Event()
    transport = make_transport(settings)
    try:
        while not stop.is_set():
            for placement in settings.each_placement():
                try:
                    engine = get_engine(placement)
                    sweep_expired_holds(engine, limit=settings.relay_batch_size)
                    drain(
                        engine,
                        transport,
                        batch_size=settings.relay_batch_size,
                        time_budget_s=settings.relay_time_budget_s,
                    )
                except sa.exc.OperationalError as exc:
                    log.warning("relay cannot reach placement %s, retrying: %s",
                                placement.placement, exc)  # fmt: skip
                except Exception:  # a long-running loop must outlive one bad run
                    # Nothing was marked published (the batch rolled back); log loudly, go on.
                    log.exception("relay run crashed; retrying after the interval")
            stop.wait(interval_s)
    finally:
        transport.close()
