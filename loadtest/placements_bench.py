"""`make bench`, placements rows (SPEC §9, docs/scaling.md): the engine's entries/s with 1, 4 and
16 ledgers on one placement, and with two placements, on this machine.

Each placement is an embedded PostgreSQL 18 (fsync on) of its own, migrated through
ARUS_PLACEMENTS. Every ledger gets 1,000 customer accounts. pgbench calls `arus_post_entry` as
the HTTP layer would, with a ledger and two customers drawn at random for each entry. That
isolates the two things a placement decides: how many ledgers share one primary, and how many
primaries share the load. The HTTP layer's cost is the same per entry wherever the ledger
lives, and `loadtest/bench.py` measures it.

    python loadtest/placements_bench.py --out build/placements [--duration 20]

Both instances run on this one 2-core machine, so the two-placement row shows what placing
costs and what it frees from contention, not the throughput of two machines. docs/scaling.md
turns these rows into the capacity model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from arus.tools import progress

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import ENGINE_CALL, pg_bin  # noqa: E402
from bracket import Database, _arus_cli  # noqa: E402

CUSTOMERS = 1_000  # per ledger
CLIENTS = 8  # pgbench clients in all, shared among the placements of a row
WARM_UP_S = 10  # per row, before it is measured
# (label, ledgers per placement, placements)
ROWS = (
    ("1 ledger, 1 placement", 1, 1),
    ("4 ledgers, 1 placement", 4, 1),
    ("16 ledgers, 1 placement", 16, 1),
    ("16 ledgers on 2 placements (8 + 8)", 8, 2),
)
# The engine call with the ledger's credentials read from bench_keys by the ledger drawn.
SCRIPT = (
    "\\set l random(1, {ledgers})\n\\set a random(1, {customers})\n"
    "\\set b random(1, {customers})\n"
    + ENGINE_CALL.format(debit="'c' || :a", credit="'c' || :b")
    .replace(":key_id", "k.key_id")
    .replace("decode(:secret_hash, 'hex')", "k.secret_hash")
    .replace(";\n", " FROM bench_keys k WHERE k.n = :l;\n")
)


@dataclass
class Result:
    row: str
    ledgers: int
    placements: int
    clients: int
    entries_per_s: float
    latency_avg_ms: float
    cpu_busy_cores: float


class Placement:
    """One embedded PostgreSQL and the ledgers placed on it."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        (work / name).mkdir()
        self.db = Database(work / name, None)
        self.ledgers = 0
        import sqlalchemy as sa

        url = sa.engine.make_url(self.db.url)
        self.socket_dir, self.dbname = str(url.query["host"]), str(url.database)

    def sql(self, statement: str) -> None:
        with self.db._connect() as conn:
            conn.exec_driver_sql(statement)

    def add_ledgers(self, env: dict[str, str], count: int) -> None:
        """Ledgers up to `count`, each with its accounts and its write key in bench_keys."""
        self.sql(
            "CREATE TABLE IF NOT EXISTS bench_keys "
            "(n int PRIMARY KEY, key_id text NOT NULL, secret_hash bytea NOT NULL)"
        )
        while self.ledgers < count:
            self.ledgers += 1
            done = _arus_cli(
                ["ledger", "create", f"bench-{self.ledgers}", "--placement", self.name], env, 120
            )
            if done.returncode != 0:
                raise SystemExit(f"arus ledger create failed: {done.stderr[-2000:]}")
            created = json.loads(done.stdout)
            key_id, secret = created["write_key"].split("_", 2)[2].split("_", 1)
            digest = hashlib.sha256(secret.encode()).hexdigest()
            lid = created["ledger_id"]
            self.sql(
                f"INSERT INTO bench_keys VALUES ({self.ledgers}, '{key_id}', "
                f"decode('{digest}', 'hex'))"
            )
            self.sql(f"""
                WITH a AS (
                    INSERT INTO accounts (ledger_id, code, name, type, currency, allow_negative)
                    SELECT '{lid}', 'c' || g, 'c' || g, 'asset', 'USD', true
                    FROM generate_series(1, {CUSTOMERS}) g RETURNING id)
                INSERT INTO balances (account_id, ledger_id, currency, normal_side, allow_negative)
                SELECT id, '{lid}', 'USD', 'debit', true FROM a""")
        self.sql("VACUUM ANALYZE")
        self.sql("CHECKPOINT")

    def pgbench(self, ledgers: int, clients: int, duration_s: int, work: Path) -> subprocess.Popen:
        script = work / f"{self.name}-{ledgers}.sql"
        script.write_text(
            SCRIPT.replace("{ledgers}", str(ledgers)).replace("{customers}", str(CUSTOMERS))
        )
        command = [
            pg_bin("pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(duration_s),
            "-f",
            str(script),
            "-h",
            self.socket_dir,
            "-U",
            "postgres",
            self.dbname,
        ]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _figures(stdout: str) -> tuple[float, float, int]:
    """pgbench's tps, average latency and failed transactions."""
    tps = float(re.search(r"tps = ([0-9.]+)", stdout).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([0-9.]+) ms", stdout).group(1))  # type: ignore[union-attr]
    failed = re.search(r"number of failed transactions: ([0-9]+)", stdout)
    return tps, latency, int(failed.group(1)) if failed else 0


def run_row(
    row: tuple[str, int, int],
    placements: list[Placement],
    env: dict[str, str],
    duration_s: int,
    work: Path,
) -> Result:
    label, ledgers, count = row
    used = placements[:count]
    for placement in used:
        placement.add_ledgers(env, ledgers)
    # Unmeasured first: a ledger's first entries touch each balance row for the first time
    # (the first 10 s of a new ledger ran at half the speed of the next 10 s).
    for warming in [p.pgbench(ledgers, CLIENTS // count, WARM_UP_S, work) for p in used]:
        warming.communicate()
    cpu_before, started = psutil.cpu_times(), time.monotonic()
    running = [p.pgbench(ledgers, CLIENTS // count, duration_s, work) for p in used]
    outputs = [process.communicate() for process in running]
    elapsed, cpu_after = time.monotonic() - started, psutil.cpu_times()
    for process, (_, stderr) in zip(running, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"pgbench failed: {stderr[-2000:]}")
    figures = [_figures(stdout) for stdout, _ in outputs]
    if any(failed for _, _, failed in figures):
        raise SystemExit(f"{label}: pgbench reported failed transactions: {figures}")
    idle = cpu_after.idle - cpu_before.idle
    busy = psutil.cpu_count() - idle / elapsed
    return Result(
        label,
        ledgers * count,
        count,
        CLIENTS,
        round(sum(f[0] for f in figures), 1),
        round(sum(f[1] for f in figures) / len(figures), 2),
        round(busy, 2),
    )


def render(results: list[Result], duration_s: int) -> str:
    lines = [
        f"# Placements bench ({time.strftime('%Y-%m-%d')}, {psutil.cpu_count()} cores, "
        f"{duration_s} s per row, {CLIENTS} pgbench clients per row)",
        "",
        "| row | ledgers | placements | entries/s | latency avg ms | CPU busy (cores) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.row} | {r.ledgers} | {r.placements} | {r.entries_per_s:,.0f} | "
        f"{r.latency_avg_ms} | {r.cpu_busy_cores} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/placements")
    parser.add_argument("--duration", type=int, default=20, help="s per row")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="arus-placements-"))
    placements: list[Placement] = []
    try:
        with progress.status("starting two PostgreSQL instances"):
            placements = [Placement(name, work) for name in ("east", "west")]
        env = {
            **__import__("os").environ,
            "ARUS_PLACEMENTS": ",".join(f"{p.name}={p.db.url}" for p in placements),
        }
        done = _arus_cli(["migrate"], env, 300)
        if done.returncode != 0:
            raise SystemExit(f"arus migrate failed: {done.stderr[-2000:]}")
        results = []
        for row in progress.track(ROWS, "placements rows"):
            result = run_row(row, placements, env, args.duration, work)
            print(
                f"placements: {result.row}: {result.entries_per_s:,.0f} entries/s, "
                f"{result.cpu_busy_cores} cores busy",
                flush=True,
            )
            results.append(result)
        verified = _arus_cli(["verify"], env, 600)
        report = json.loads(verified.stdout)
        summary = (
            f"`arus verify` over both placements: exit {verified.returncode}, "
            f"ok={report['ok']}, {len(report['ledgers'])} ledgers"
        )
        print(f"placements: {summary}", flush=True)
        (out / "report.json").write_text(
            json.dumps({"rows": [asdict(r) for r in results], "verify": summary}, indent=2)
        )
        (out / "report.md").write_text(render(results, args.duration) + "\n" + summary + "\n")
        print(render(results, args.duration))
        return 0 if verified.returncode == 0 else 1
    finally:
        for placement in placements:
            placement.db.stop()


if __name__ == "__main__":
    sys.exit(main())
