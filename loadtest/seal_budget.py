"""What a close costs on a day of 100,000 entries: the whole close, and its seal alone.

    python loadtest/seal_budget.py [--entries 100000]

An embedded PostgreSQL seeded as `make bench` seeds it (10,000 accounts), the entries posted
through `arus_post_batch` (1,000 per call), then dated and stamped yesterday as the owner (a
test set-up, behind the triggers) so that yesterday can be closed. Prints the timings in JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import Bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    bench = Bench(argparse.Namespace(duration=1, only="pgbench"),
                  Path(tempfile.mkdtemp(prefix="arus-seal-")))  # fmt: skip
    try:
        bench.setup()
        target = bench.after
        started = time.monotonic()
        for _ in range(args.entries // 1000):
            items = [{"key": uuid.uuid4().hex, "fingerprint": "f", "description": "seal budget",
                      "effective_date": "2000-01-01", "metadata": {}, "pending": False,
                      "lines": [{"account_code": f"c{random.randint(1, 10_000)}",
                                 "direction": "debit", "amount": 1},
                                {"account_code": f"c{random.randint(1, 10_000)}",
                                 "direction": "credit", "amount": 1}]}
                     for _ in range(1000)]  # fmt: skip
            items_sql = json.dumps(items).replace("'", "''")
            target.sql(f"SELECT arus_post_batch('{target.key_id}', "
                       f"decode('{target.secret_hash}', 'hex'), '{items_sql}', true)")  # fmt: skip
        posted_s = time.monotonic() - started
        lid = target.ledger_id
        target.sql("SET session_replication_role = replica")  # the run's one connection
        target.sql(f"UPDATE ledgers SET created_at = created_at - interval '2 days' "
                   f"WHERE id = '{lid}'")  # fmt: skip
        target.sql(
            f"UPDATE entries SET effective_date = current_date - 1 WHERE ledger_id = '{lid}'"
        )
        target.sql("RESET session_replication_role")
        target.sql("VACUUM ANALYZE")
        started = time.monotonic()
        seal = target.sql(f"SELECT arus_journal_seal('{lid}', NULL, 0, {args.entries}, "
                          "'-infinity', now())")[0][0]  # fmt: skip
        seal_s = time.monotonic() - started
        started = time.monotonic()
        report = target.sql(f"SELECT arus_close_day('{lid}', current_date - 1)")[0][0]
        close_s = time.monotonic() - started
        print(json.dumps({
            "entries": args.entries, "posted_s": round(posted_s, 1),
            "seal_alone_s": round(seal_s, 2), "close_s": round(close_s, 2),
            "close_ok": report["ok"], "accounts": report["accounts"],
            "seal_matches_close": seal == report["seal"],
        }, indent=2))  # fmt: skip
        return 0 if report["ok"] else 1
    finally:
        bench.db.stop()


if __name__ == "__main__":
    raise SystemExit(main())
