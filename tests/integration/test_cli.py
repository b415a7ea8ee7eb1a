"""The `arus` command end to end, in subprocesses, as an operator would run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.ledgers import backdate_ledger

ARUS = [sys.executable, "-m", "arus.tools.cli"]


# Administration runs as the owner (as an operator would); everything else as the app's role.
OWNER_COMMANDS = ("migrate", "ledger", "key", "app-user")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = dict(os.environ)
        if args and args[0] in OWNER_COMMANDS:
            env["ARUS_DATABASE_URL"] = os.environ["ARUS_TEST_OWNER_URL"]
    return subprocess.run([*ARUS, *args], capture_output=True, text=True, timeout=120, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, key: str, body: dict | None = None, **headers: str):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port} after {timeout_s}s")


def test_migrate_is_idempotent(database_url):
    for _ in range(2):
        result = run("migrate")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["schema_revision"] is not None


def test_ledger_and_key_lifecycle(database_url):
    created = run("ledger", "create", "cli-books")
    assert created.returncode == 0, created.stderr
    ledger = json.loads(created.stdout)
    assert set(ledger) == {"ledger_id", "name", "write_key", "read_key", "placement"}
    assert ledger["name"] == "cli-books" and ledger["placement"] == "main"

    issued = run("key", "create", "--ledger", ledger["ledger_id"], "--scope", "read")
    assert issued.returncode == 0, issued.stderr
    key = json.loads(issued.stdout)
    assert set(key) == {"key_id", "key", "scope"} and key["scope"] == "read"
    assert key["key"].startswith(f"arus_{key['key_id']}_")

    assert run("key", "revoke", key["key_id"]).returncode == 0
    again = run("key", "revoke", key["key_id"])
    assert again.returncode == 1 and "no active key" in again.stderr

    bad_scope = run("key", "create", "--ledger", ledger["ledger_id"], "--scope", "admin")
    assert bad_scope.returncode == 2
    unknown = run("key", "create", "--ledger", "00000000-0000-0000-0000-000000000000",
                  "--scope", "read")  # fmt: skip
    assert unknown.returncode == 2 and "no ledger" in unknown.stderr


def test_missing_configuration_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARUS_")}
    result = run("migrate", env=env)
    assert result.returncode == 2 and "ARUS_DATABASE_URL" in result.stderr


OPERATOR = "operator-token-" + "x" * 32


def test_serve_answers_every_surface(database_url):
    ledger = json.loads(run("ledger", "create", "served").stdout)
    port = free_port()
    # The shared test database holds every earlier test's unpublished events, which the relay
    # logs (log transport): the output is discarded, never left in a pipe nobody reads (a full
    # pipe blocks the server), and a short budget bounds the run whatever the backlog.
    server = subprocess.Popen(
        [*ARUS, "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "ARUS_RELAY_TIME_BUDGET_S": "2", "ARUS_OPERATOR_TOKEN": OPERATOR},
    )  # fmt: skip
    try:
        wait_for_port(port, server)
        base = f"http://127.0.0.1:{port}"
        account = {"code": "cash", "name": "Cash", "type": "asset", "currency": "USD"}
        status, _ = http("POST", f"{base}/v1/accounts", ledger["write_key"], account)
        assert status == 201
        status, body = http("GET", f"{base}/v1/accounts/cash", ledger["read_key"])
        assert status == 200 and body["balance"] == 0
        status, body = http("POST", f"{base}/jobs/relay", ledger["read_key"])
        assert status == 401 and body["error"]["code"] == "unauthenticated"  # a key is no operator
        status, body = http("POST", f"{base}/jobs/relay", OPERATOR)
        assert status == 200 and body["error"] is None
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_dev_starts_embedded_ledger_and_keeps_data_across_restarts(tmp_path: Path):
    """The quick start: `arus dev` with no database configured, twice."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARUS_")}
    data_dir = tmp_path / "local"

    def start() -> tuple[subprocess.Popen, int]:
        port = free_port()
        process = subprocess.Popen(
            [*ARUS, "dev", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        wait_for_port(port, process, timeout_s=90)
        return process, port

    def stop(process: subprocess.Popen) -> str:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        return output

    process, port = start()
    try:
        keys = json.loads((data_dir / "demo-ledger.json").read_text())
        base = f"http://127.0.0.1:{port}"
        for code, kind in (("cash", "asset"), ("equity", "equity")):
            status, _ = http("POST", f"{base}/v1/accounts", keys["write_key"],
                             {"code": code, "name": code, "type": kind, "currency": "USD",
                              "allow_negative": kind == "equity"})  # fmt: skip
            assert status == 201
        status, _ = http(
            "POST", f"{base}/v1/entries", keys["write_key"],
            {"postings": [{"account": "cash", "direction": "debit", "amount": 1234},
                          {"account": "equity", "direction": "credit", "amount": 1234}]},
            Idempotency_Key="first",
        )  # fmt: skip
        assert status == 201
        time.sleep(2.5)  # the relay runs every second with the log transport
    finally:
        output = stop(process)
    assert keys["write_key"] in output and "curl" in output
    lines = [line for line in output.splitlines() if line.startswith("{")]
    event_types = {json.loads(line).get("event_type") for line in lines}
    assert "entry.committed" in event_types, output[-2000:]
    assert (data_dir / "demo-ledger.json").stat().st_mode & 0o777 == 0o600

    process, port = start()
    try:
        again = json.loads((data_dir / "demo-ledger.json").read_text())
        assert again == keys
        status, body = http("GET", f"http://127.0.0.1:{port}/v1/accounts/cash", keys["read_key"])
        assert status == 200 and body["balance"] == 1234
    finally:
        stop(process)


def test_relay_once_and_close_from_the_command_line(database_url, engine):
    import datetime as dt

    created = run("ledger", "create", "to-close")
    assert created.returncode == 0
    backdate_ledger(engine, json.loads(created.stdout)["ledger_id"], days=2)
    relay = run("relay", "--once")
    assert relay.returncode == 0, relay.stderr
    outcome = json.loads(relay.stdout.strip().splitlines()[-1])
    assert outcome["error"] is None and outcome["oldest_unpublished_age_s"] is None

    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    closed = run("close", "--date", yesterday)
    assert closed.returncode == 0, closed.stderr
    reports = json.loads(closed.stdout)
    assert reports and all(r["ok"] and r["date"] == yesterday for r in reports)
    rerun = run("close", "--date", yesterday)
    assert json.loads(rerun.stdout) == reports

    too_early = run("close", "--date", dt.datetime.now(dt.UTC).date().isoformat())
    assert too_early.returncode == 2 and "can be closed from" in too_early.stderr
