"""examples/family_finance end to end: the documented commands, run as a user runs them, against
a real `arus serve` on the test PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from arus_client import shadow
from arus_client.client import ArusClient, NewPosting

from tests.support.ledgers import REPO

DAY = dt.date(2025, 1, 15)
CASH = 250_000  # the demo: groceries 4250 -> 3899 -> deleted, salary 250000


def family_finance(
    store: Path, *args: str, url: str, key: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARUS_URL", "ARUS_KEY")}
    env["ARUS_URL"] = url
    if key is not None:
        env["ARUS_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "examples.family_finance", "--store", str(store), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def namespace_of(store: Path) -> str:
    engine = sa.create_engine(f"sqlite:///{store}")
    with engine.connect() as conn:
        namespace = conn.execute(sa.text("SELECT ledger_namespace FROM household")).scalar_one()
    engine.dispose()
    return str(namespace)


def test_seed_then_drain_reports_4_of_4_and_zero_drift(tmp_path, server, ledger):
    store = tmp_path / "family.sqlite3"
    seeded = family_finance(store, "seed", url=server, key=None)  # no ledger needed to record
    assert seeded.returncode == 0, seeded.stderr
    assert f"app cash balance: {CASH}" in seeded.stdout and "4 pending" in seeded.stdout

    drained = family_finance(store, "drain", url=server, key=ledger.write_key)
    print(drained.stdout)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    lines = drained.stdout.splitlines()
    assert lines[0] == "drained 4/4 (applied 4, skipped 0, retrying 0, dead 0)"
    assert lines[1] == f"zero_drift: expected cash {CASH} == ledger cash {CASH}"

    namespace = namespace_of(store)
    with ArusClient(server, ledger.read_key) as reader:
        assert reader.get_account(f"{namespace}:cash").balance == CASH
        assert len(list(reader.iter_entries())) == 5  # 3 posts, 2 reversals


def test_demo_in_one_command_and_its_json_report(tmp_path, server, ledger):
    store = tmp_path / "demo.sqlite3"
    demo = family_finance(store, "demo", url=server, key=ledger.write_key)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "drained 4/4" in demo.stdout
    assert f"zero_drift: expected cash {CASH} == ledger cash {CASH}" in demo.stdout
    report = family_finance(store, "--json", "report", url=server, key=ledger.read_key)
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["status"] == "zero_drift" and body["differences"] == []
    assert body["queue"] == {"pending": 0, "done": 4, "skipped": 0, "dead": 0}
    again = family_finance(store, "demo", url=server, key=ledger.write_key)
    assert again.returncode == 2 and "not empty" in again.stdout


def test_report_shows_drift_when_the_ledger_disagrees(tmp_path, server, ledger):
    store = tmp_path / "drift.sqlite3"
    assert family_finance(store, "demo", url=server, key=ledger.write_key).returncode == 0
    namespace = namespace_of(store)
    with ArusClient(server, ledger.write_key) as arus:  # a write the app never made
        arus.post_entry(
            [
                NewPosting(f"{namespace}:cash", "debit", 500),
                NewPosting(f"{namespace}:income", "credit", 500),
            ]
        )
    report = family_finance(store, "report", url=server, key=ledger.read_key)
    assert report.returncode == 1, report.stdout + report.stderr
    assert report.stdout.splitlines()[0] == (
        f"drift: expected cash {CASH} != ledger cash {CASH + 500}"
    )
    assert report.stdout.count("<-- differs") == 2  # cash and income


def test_the_app_keeps_working_while_the_ledger_is_down(tmp_path, server, ledger):
    store = tmp_path / "down.sqlite3"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert family_finance(store, "seed", url=dead_url, key=None).returncode == 0
    down = family_finance(
        store, "--wait-s", "0", "--timeout-s", "1", "drain", url=dead_url, key=ledger.write_key
    )
    assert down.returncode == 4, down.stdout + down.stderr
    assert down.stdout.startswith("drained 0/4") and "retrying 2" in down.stdout
    status = json.loads(family_finance(store, "status", url=dead_url, key=None).stdout)
    assert status["cash_balance"] == CASH and status["queue"]["pending"] == 4

    up = family_finance(store, "drain", url=server, key=ledger.write_key)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "drained 4/4" in up.stdout
    assert f"zero_drift: expected cash {CASH} == ledger cash {CASH}" in up.stdout


def test_float_money_is_refused_by_the_app_and_nothing_is_written(tmp_path):
    from examples.family_finance import store as ff_store

    engine = ff_store.engine_for(str(tmp_path / "floats.sqlite3"))
    ff_store.open_store(engine)
    with pytest.raises(shadow.AmountTypeError, match="int of minor units"):
        ff_store.add_transaction(
            engine, kind="expense", amount_minor=42.5, category="food", occurred_on=DAY
        )
    assert ff_store.live_transactions(engine) == []
    assert shadow.queue_status(engine)["pending"] == 0
    engine.dispose()


def test_the_cli_refuses_a_float_amount(tmp_path, server):
    store = tmp_path / "cli.sqlite3"
    result = family_finance(
        store, "add", "expense", "--amount-minor", "19.99", url=server, key=None
    )
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_the_example_depends_on_arus_client_never_on_the_server():
    import ast

    example = REPO / "examples" / "family_finance"
    imported = set()
    for source in example.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert "arus_client" in imported and "arus" not in imported, sorted(imported)
    assert "./clients/python[shadow]" in (example / "requirements.txt").read_text()
