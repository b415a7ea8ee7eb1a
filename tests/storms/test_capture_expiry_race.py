"""A capture racing its hold's expiry (SPEC §3.2, issue 16): it commits or answers 409
`pending_expired`, never 422 `insufficient_funds`, whatever a spend or the sweep does at the
same instant.

Each trial funds a wallet with exactly one hold's amount and holds all of it until a moment
from now; at that instant a capture of the hold and a spend of the same amount fire together
(the spend can only pass once the hold has stopped counting), and in every third trial the
expiry sweep fires too. The aim follows the outcomes (earlier after an expired capture, later
after a committed one), so the trials sit where the capture's expiry check and the instant
meet. 300 trials, bounded in time.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from arus.jobs.verify import verify_ledger
from arus.ledger import gateway

from tests.support.ledgers import Api, Ledger
from tests.support.storm import InFlight, ThreadClient

TRIALS = 300
AMOUNT = 100
LEAD_S = 0.03  # the hold expires this long after it is made
JITTER_S = 0.001  # each request fires within this of the aim
STEP_S = 0.0005  # the aim moves by this after each trial, towards the instant checks meet
DEADLINE_S = 240


def _body(status: str, wallet: str, **extra: object) -> dict[str, Any]:
    return {
        "status": status,
        "postings": [
            {"account": wallet, "direction": "debit", "amount": AMOUNT},
            {"account": "merchant", "direction": "credit", "amount": AMOUNT},
        ],
        **extra,
    }


def _at(instant: float) -> None:
    time.sleep(max(0.0, instant - time.time()))


def test_a_capture_at_its_expiry_commits_or_is_pending_expired(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "merchant", "liability")
    rng = random.Random(16)
    in_flight = InFlight()
    capturer, spender = ThreadClient(api, in_flight), ThreadClient(api, in_flight)
    tally: Counter[tuple[str, str, str]] = Counter()
    aim = -0.003  # seconds from the expiry instant; a request takes a few ms to be judged
    started = time.monotonic()

    def label(response: Any) -> str:
        body = response.get_json()
        return body["error"]["code"] if "error" in body else str(response.status_code)

    with ThreadPoolExecutor(max_workers=3) as pool:
        for trial in range(TRIALS):
            assert time.monotonic() - started < DEADLINE_S, f"out of time at trial {trial}"
            wallet = f"wallet-{trial}"
            api.account(ledger, wallet, "liability")
            assert api.transfer(ledger, "cash", wallet, AMOUNT).status_code == 201
            expiry = time.time() + LEAD_S
            expires_at = dt.datetime.fromtimestamp(expiry, dt.UTC).isoformat()
            held = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                            json=_body("pending", wallet, expires_at=expires_at))  # fmt: skip
            assert held.status_code == 201, held.get_json()
            hold = held.get_json()["id"]

            def capture(at: float, hold: str = hold) -> str:
                _at(at)
                return label(capturer.post(f"/v1/entries/{hold}/post", key=ledger.write_key,
                                           json={}, idempotency_key=uuid.uuid4().hex))  # fmt: skip

            def spend(at: float, wallet: str = wallet) -> str:
                _at(at)
                return label(spender.post("/v1/entries", key=ledger.write_key,
                                          json=_body("posted", wallet),
                                          idempotency_key=uuid.uuid4().hex))  # fmt: skip

            def sweep(at: float) -> str:
                _at(at)
                return f"swept {gateway.expire_holds(engine, limit=10)}"

            fire = [expiry + aim + rng.uniform(-JITTER_S, JITTER_S) for _ in range(3)]
            captured = pool.submit(capture, fire[0])
            spent = pool.submit(spend, fire[1])
            swept = pool.submit(sweep, fire[2]) if trial % 3 == 0 else None
            outcome = (captured.result(timeout=30), spent.result(timeout=30))
            sweeper = swept.result(timeout=30) if swept else "no sweep"
            tally[(*outcome, sweeper.split(" ")[0])] += 1
            assert outcome[0] in ("201", "pending_expired"), (trial, outcome, sweeper)
            assert outcome[1] in ("201", "insufficient_funds"), (trial, outcome, sweeper)
            assert outcome != ("201", "201"), (trial, "the hold's funds were spent twice")
            aim += STEP_S if outcome[0] == "201" else -STEP_S

    with engine.connect() as conn:
        report = verify_ledger(conn, ledger.ledger_id)
        lowest = conn.execute(
            sa.text("SELECT min(b.balance) FROM balances b JOIN accounts a ON a.id = b.account_id "
                    "WHERE a.ledger_id = :l AND a.code LIKE 'wallet-%'"),
            {"l": ledger.ledger_id},
        ).scalar_one()  # fmt: skip
    figures = {f"{c}/{s}/{w}": n for (c, s, w), n in sorted(tally.items())}
    print(f"\nRACE capture/spend/sweep at expiry over {TRIALS} trials: {figures}")
    assert lowest >= 0, figures
    assert report["ok"], (report, figures)
    captured_count = sum(n for (c, _, _), n in tally.items() if c == "201")
    assert 0 < captured_count < TRIALS, f"the trials must straddle the instant: {figures}"


def test_the_interleaving_the_race_needs_forced_by_a_held_outcome_row(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    """The losing interleaving, made certain instead of waited for: the capture passes its
    expiry check just before the instant and is then held (by an uncommitted outcome row of the
    test's, on which its claim waits) until a spend that started after the instant has had its
    chance. The spend must not take the held funds from under a capture that passed its check."""
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "merchant", "liability")
    api.account(ledger, "wallet", "liability")
    assert api.transfer(ledger, "cash", "wallet", AMOUNT).status_code == 201
    expiry = time.time() + 0.4
    expires_at = dt.datetime.fromtimestamp(expiry, dt.UTC).isoformat()
    held = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                    json=_body("pending", "wallet", expires_at=expires_at))  # fmt: skip
    hold = held.get_json()["id"]
    in_flight = InFlight()
    capturer, spender = ThreadClient(api, in_flight), ThreadClient(api, in_flight)

    def post(client: ThreadClient, path: str, body: dict[str, Any], at: float) -> str:
        _at(at)
        response = client.post(path, key=ledger.write_key, json=body,
                               idempotency_key=uuid.uuid4().hex)  # fmt: skip
        payload = response.get_json()
        return payload["error"]["code"] if "error" in payload else str(response.status_code)

    with engine.connect() as blocker, ThreadPoolExecutor(max_workers=2) as pool:
        tx = blocker.begin()
        blocker.execute(
            sa.text("INSERT INTO pending_outcomes (entry_id, ledger_id, outcome) "
                    "VALUES (:e, :l, 'voided')"),
            {"e": hold, "l": ledger.ledger_id},
        )  # fmt: skip
        captured = pool.submit(post, capturer, f"/v1/entries/{hold}/post", {}, expiry - 0.2)
        spent = pool.submit(post, spender, "/v1/entries", _body("posted", "wallet"), expiry + 0.1)
        _at(expiry + 0.4)
        tx.rollback()  # the capture's claim goes on
        outcome = (captured.result(timeout=30), spent.result(timeout=30))
    assert outcome == ("201", "insufficient_funds"), outcome
    wallet = api.get("/v1/accounts/wallet", key=ledger.read_key).get_json()
    assert wallet["balance"] == 0 and wallet["pending_debits"] == 0, wallet
