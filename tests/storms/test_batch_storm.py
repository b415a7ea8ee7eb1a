"""Batch storm: 32 workers posting overlapping batches with shared keys (SPEC §3.1)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import sqlalchemy as sa
from arus.jobs.verify import verify_ledger

from tests.support.batches import BATCH, transfer
from tests.support.ledgers import Api, Ledger
from tests.support.storm import Outcome, http_outcome, storm

STORM_KEYS = 96
STORM_BATCHES_PER_WORKER = 4
STORM_BATCH_SIZE = 12
STORM_SEED = 8


def test_overlapping_batches_with_shared_keys_make_exactly_one_entry_per_key(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    accounts = [f"acct-{i}" for i in range(8)]
    for code in accounts:
        api.account(ledger, code, "asset")
    api.account(ledger, "source", "equity", allow_negative=True)
    rng = random.Random(STORM_SEED)
    # Every key always carries the same body; some entries overdraw (10 funded, 7 moved).
    bodies = {}
    for i in range(STORM_KEYS):
        if i < len(accounts):
            bodies[f"key-{i}"] = transfer(accounts[i], "source", 10, key=f"key-{i}")
        else:
            a, b = rng.sample(accounts, 2)
            bodies[f"key-{i}"] = transfer(b, a, 7, key=f"key-{i}")

    def work(index: int, client: Any) -> list[Outcome]:
        local = random.Random(STORM_SEED * 1000 + index)
        outcomes = []
        for _ in range(STORM_BATCHES_PER_WORKER):
            keys = local.sample(sorted(bodies), STORM_BATCH_SIZE)
            response = client.post(BATCH, key=ledger.write_key, json={
                "entries": [bodies[k] for k in keys], "atomic": local.random() < 0.3})  # fmt: skip
            outcome = http_outcome(response)
            if outcome.status == 200:
                outcomes += [
                    Outcome(status=r["status"], body=r.get("entry") or r,
                            replayed=r.get("replayed", False))
                    for r in outcome.body["results"]
                ]  # fmt: skip
            else:
                outcomes.append(outcome)
        return outcomes

    outcomes, peak = storm(api, work)
    labels = Counter(o.label for o in outcomes)
    figures = f"outcomes={dict(labels)} peak_in_flight={peak}"
    assert not any(o.status >= 500 for o in outcomes), figures
    assert set(labels) <= {"201", "200", "insufficient_funds"}, figures
    with engine.connect() as conn:
        per_key = conn.execute(
            sa.text("SELECT idempotency_key, count(*) FROM entries WHERE ledger_id = :l "
                    "GROUP BY idempotency_key"), {"l": ledger.ledger_id},
        ).all()  # fmt: skip
        report = verify_ledger(conn, ledger.ledger_id)
    assert all(n == 1 for _, n in per_key), f"{figures} keys with two entries"
    created = {o.body["id"] for o in outcomes if o.status == 201}
    assert len(created) == len(per_key) == labels["201"], f"{figures} entries={len(per_key)}"
    assert report["ok"], f"{figures} verify={report}"
    print(f"\nSTORM batch: {figures} entries={len(per_key)} verify_ok={report['ok']}")


# ---------------------------------------------------------------------------------------------
# Property: a non-atomic batch gives the outcomes and balances of its items posted one by one.
