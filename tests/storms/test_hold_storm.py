"""The hold storm: 32 workers race post, void, expiry and spending on the same holds (SPEC §3.2).

Every hold must end with exactly one outcome (posted, voided or expired), won by at most one
request; the wallet's available balance must never be seen below zero, while a monitor reads it
throughout; and the books must verify: no drift, pending totals equal to their holds.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from arus.jobs.verify import verify_ledger
from arus.ledger import gateway

from tests.support.ledgers import Api, Ledger
from tests.support.storm import WORKERS, Outcome, storm

FUNDING = 10_000
HOLD = 100
HOLDS = 64  # 6,400 reserved: spending can take the rest, never more
EXPIRING = 16  # of them expire while the storm runs
ACTIONS_PER_WORKER = 20
SPEND = 150


def _body(status: str, amount: int, **extra: object) -> dict[str, Any]:
    return {
        "status": status,
        "postings": [
            {"account": "wallet", "direction": "debit", "amount": amount},
            {"account": "merchant", "direction": "credit", "amount": amount},
        ],
        **extra,
    }


def test_hold_storm_gives_each_hold_exactly_one_outcome(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "wallet", "liability")
    api.account(ledger, "merchant", "liability")
    assert api.transfer(ledger, "cash", "wallet", FUNDING).status_code == 201

    def create(extra: dict[str, object]) -> str:
        response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                            json=_body("pending", HOLD, **extra))  # fmt: skip
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["id"])

    holds = [create({}) for _ in range(HOLDS - EXPIRING)]
    # Soon enough that most of these expire while the storm still races for them.
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
    holds += [create({"expires_at": expires_at.isoformat()}) for _ in range(EXPIRING)]

    lowest_seen: list[int] = []
    stop = threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            body = api.get("/v1/accounts/wallet", key=ledger.read_key).get_json()
            lowest_seen.append(int(body["available_balance"]))
            stop.wait(0.02)

    def job(index: int, client: Any) -> list[Outcome]:
        rng = random.Random(index)
        outcomes = []
        for _ in range(ACTIONS_PER_WORKER):
            choice = rng.random()
            if index == 0 and choice < 0.3:
                gateway.expire_holds(engine, limit=10)
                continue
            if choice < 0.25:  # spend what is available, if it is
                path, body = "/v1/entries", _body("posted", SPEND)
            else:
                action = "post" if choice < 0.6 else "void"
                path, body = f"/v1/entries/{rng.choice(holds)}/{action}", {}
            response = client.post(path, key=ledger.write_key, json=body,
                                   idempotency_key=uuid.uuid4().hex)  # fmt: skip
            outcomes.append(
                Outcome(status=response.status_code, body={"path": path, **response.get_json()})
            )
        return outcomes

    watcher = threading.Thread(target=monitor)
    watcher.start()
    try:
        results, peak = storm(api, job)
    finally:
        stop.set()
        watcher.join()
    while gateway.expire_holds(engine) > 0:  # tidy what expired after the last action
        pass

    tally = Counter(o.label for o in results)
    won: Counter[str] = Counter()
    for o in results:
        path = o.body["path"]
        if path != "/v1/entries" and o.status in (200, 201):
            won[path.split("/")[3]] += 1
    with engine.connect() as conn:
        outcomes = dict(
            conn.execute(
                sa.text("SELECT entry_id::text, outcome FROM pending_outcomes "
                        "WHERE entry_id = ANY (CAST(:ids AS uuid[]))"),
                {"ids": holds},
            ).all()
        )  # fmt: skip
        postings_of = dict(
            conn.execute(
                sa.text("SELECT posts::text, count(*) FROM entries "
                        "WHERE posts = ANY (CAST(:ids AS uuid[])) GROUP BY posts"),
                {"ids": holds},
            ).all()
        )  # fmt: skip
        report = verify_ledger(conn, ledger.ledger_id)
        lowest_after = conn.execute(
            sa.text("SELECT min(p.balance_after) FROM postings p JOIN accounts a "
                    "ON a.id = p.account_id WHERE a.ledger_id = :l AND a.code = 'wallet'"),
            {"l": ledger.ledger_id},
        ).scalar_one()  # fmt: skip
    wallet = api.get("/v1/accounts/wallet", key=ledger.read_key).get_json()
    by_outcome = Counter(outcomes.values())
    spends = sum(1 for o in results if o.body["path"] == "/v1/entries" and o.status == 201)
    figures = (
        f"workers={WORKERS} requests={len(results)} peak_in_flight={peak} outcomes={dict(tally)} "
        f"holds={HOLDS} resolved={dict(by_outcome)} spends={spends} wallet={wallet['balance']} "
        f"available={wallet['available_balance']} lowest_available_seen={min(lowest_seen)} "
        f"reads={len(lowest_seen)}"
    )
    assert len(outcomes) == HOLDS, f"every hold has exactly one outcome: {figures}"
    assert all(won[h] <= 1 for h in holds), f"one winning request per hold: {figures}"
    for hold in holds:
        outcome = outcomes[hold]
        assert postings_of.get(hold, 0) == (1 if outcome == "posted" else 0), (hold, figures)
        assert won[hold] == (0 if outcome == "expired" else 1), (hold, outcome, figures)
    assert set(tally) <= {"201", "200", "entry_not_pending", "pending_expired",
                          "insufficient_funds"}, figures  # fmt: skip
    assert min(lowest_seen) >= 0 and wallet["available_balance"] >= 0, figures
    assert lowest_after >= 0, figures
    captured = by_outcome["posted"] * HOLD
    assert wallet["balance"] == FUNDING - captured - spends * SPEND, figures
    assert wallet["pending_debits"] == 0, figures
    assert report["ok"], f"{figures} verify={report}"
    print(f"\nSTORM holds: {figures}")
