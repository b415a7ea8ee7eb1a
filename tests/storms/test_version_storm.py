"""32 workers read-modify-write one account with expected versions (SPEC §3.5): every success
saw the version it expected, and no update is lost."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from tests.support.ledgers import Api, Ledger
from tests.support.storm import WORKERS, Outcome, http_outcome, storm

SUCCESSES_PER_WORKER = 2
DEADLINE_S = 60


def test_read_modify_write_with_expected_versions_loses_no_update(api: Api, ledger: Ledger):
    api.account(ledger, "wallet", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)

    def worker(_index: int, client: Any) -> list[Outcome]:
        outcomes: list[Outcome] = []
        successes, deadline = 0, time.monotonic() + DEADLINE_S
        while successes < SUCCESSES_PER_WORKER and time.monotonic() < deadline:
            seen = client._api.get("/v1/accounts/wallet", key=ledger.read_key).get_json()
            lines = [{"account": "wallet", "direction": "debit", "amount": 1,
                      "expected_version": seen["version"]},
                     {"account": "equity", "direction": "credit", "amount": 1}]  # fmt: skip
            outcome = http_outcome(client.post("/v1/entries", key=ledger.write_key,
                                               idempotency_key=uuid.uuid4().hex,
                                               json={"postings": lines}))  # fmt: skip
            outcomes.append(Outcome(outcome.status, {"seen": seen, "answer": outcome.body}))
            successes += outcome.status == 201
        return outcomes

    results, peak = storm(api, worker)
    tally = Counter(o.status for o in results)
    written = [o.body for o in results if o.status == 201]
    figures = f"workers={WORKERS} peak_in_flight={peak} outcomes={dict(tally)}"
    assert set(tally) <= {201, 409}, figures
    assert tally[409] > 0, f"no conflict: the storm did not overlap ({figures})"
    made = []
    for w in written:
        (wallet_line,) = [p for p in w["answer"]["postings"] if p["account_code"] == "wallet"]
        assert wallet_line["account_version"] == w["seen"]["version"] + 1, (w, figures)
        made.append(wallet_line["account_version"])
    assert sorted(made) == list(range(1, len(written) + 1)), f"a version made twice: {figures}"
    final = api.get("/v1/accounts/wallet", key=ledger.read_key).get_json()
    assert final["version"] == len(written) and final["balance"] == len(written), figures
    assert len(written) == WORKERS * SUCCESSES_PER_WORKER, f"a worker ran out of time: {figures}"
