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
from bench import Bench

SEQUENCE_STEP = re.compile(r"UPDATE ledgers SET last_ledger_seq.*?INTO STRICT v_seq;", re.S)
# Far above any real ledger_seq of the run, so the unique (ledger_id, ledger_seq) still holds.
WITHOUT_STEP = "v_seq := nextval('seq_window_bound') + 1000000000;"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="s per row")
    args = parser.parse_args()
    bench = Bench(argparse.Namespace(duration=args.duration, only="pgbench"),
                  Path(tempfile.mkdtemp(prefix="arus-seq-window-")))  # fmt: skip
    try:
        bench.setup()
        bench.warm_up()
        rows = []
        for label in ("with the sequence step", "without it (bound)"):
            if label.startswith("without"):
                engine = engine_sql.engine_sql()
                assert SEQUENCE_STEP.search(engine), "the sequence step is not where it was"
                bench.sql("CREATE SEQUENCE seq_window_bound")
                bench.sql("SET check_function_bodies = off;\n"
                          + SEQUENCE_STEP.sub(WITHOUT_STEP, engine))  # fmt: skip
            for shape in ("uniform", "hot"):
                shutil.rmtree(bench.work / f"log-engine-{shape}", ignore_errors=True)
                row = bench.pgbench("engine", shape)
                rows.append((label, shape, row))
                print(f"{label:24} {shape:8} {row.entries_per_s:7,.0f} entries/s  "
                      f"p50 {row.p50_ms} ms  waits {row.waits}", flush=True)  # fmt: skip
        with_step = {s: r.entries_per_s for label, s, r in rows if label.startswith("with ")}
        for label, shape, row in rows:
            if label.startswith("without"):
                window_ms = 1000 / with_step[shape]
                print(f"{shape}: the step costs {row.entries_per_s / with_step[shape]:.2f}x; "
                      f"one entry holds the ledger row ~{window_ms:.2f} ms")  # fmt: skip
    finally:
        bench.db.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
