"""What the gap-free `ledger_seq` costs: the engine with and without its sequence step.

Every entry of a ledger takes the ledger row (`UPDATE ledgers SET last_ledger_seq = ...`) and
holds it to the end of its commit, so one ledger's entries pass that point one at a time. This
diagnostic measures how much that queue costs, in a scratch database of its own: the engine
through pgbench as it is, then with that one statement replaced by a plain sequence (numbers
that are unique but may have gaps, which the SPEC does not allow: never a design, only a bound).

    python loadtest/seq_window.py --duration 10

Same set-up as `make bench` (loadtest/bench.py): 10,000 accounts, 8 pgbench clients, warm-up.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from arus.ledger import engine_sql

sys.path.insert(0, str(Path(__file__).parent))
from bench import PGBENCH_CLIENTS, Bench

# The record statement's sequence step (ledger/sql/posting.sql, arus_write_entries step 4).
SEQUENCE_STEP = re.compile(
    r"sequenced AS \(\s*UPDATE ledgers SET last_ledger_seq.*?AS at\s*\)", re.S
)
# Far above any real ledger_seq of the run, and 1,000 apart per call (a call writes at most
# 1,000 entries), so the unique (ledger_id, ledger_seq) still holds.
WITHOUT_STEP = ("sequenced AS (SELECT nextval('seq_window_bound') * 1000 + 1000000000 AS before, "
                "clock_timestamp() AS at)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="s per row")
    args = parser.parse_args()
    bench = Bench(argparse.Namespace(duration=args.duration, only="pgbench"),
                  Path(tempfile.mkdtemp(prefix="arus-seq-window-")))  # fmt: skip
    target = bench.after
    try:
        bench.setup()
        bench.warm_up()
        rates: dict[tuple[str, str], float] = {}
        for label in ("with the sequence step", "without it (bound)"):
            if label.startswith("without"):
                engine = (engine_sql.SQL_DIR / "posting.sql").read_text()
                assert SEQUENCE_STEP.search(engine), "the sequence step is not where it was"
                target.sql("CREATE SEQUENCE seq_window_bound")
                target.sql(SEQUENCE_STEP.sub(WITHOUT_STEP, engine))
            for shape in ("uniform", "hot"):
                sample = bench.pgbench(target, "engine", shape, PGBENCH_CLIENTS)
                rates[label, shape] = sample.entries / sample.elapsed_s
                print(f"{label:24} {shape:8} {rates[label, shape]:7,.0f} entries/s  "
                      f"waits {sample.waits}", flush=True)  # fmt: skip
        for shape in ("uniform", "hot"):
            with_step = rates["with the sequence step", shape]
            bound = rates["without it (bound)", shape]
            print(f"{shape}: without the step {bound / with_step:.2f}x; "
                  f"one entry holds the ledger row ~{1000 / with_step:.2f} ms")  # fmt: skip
    finally:
        bench.db.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
