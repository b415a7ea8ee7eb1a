"""The bracket runner (loadtest/bracket.py): its verdicts, and one short run against a real server.

The smoke runs use a few users for a few seconds against `arus serve` (gunicorn over waitress)
on the session's PostgreSQL. They check what the report says and how it is shaped, never how
fast the server was: the SLO is set so the verdict does not depend on speed (p99 < 0 ms always
fails; an unbounded p99 passes whenever nothing fails).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.ledgers import REPO

BRACKET = REPO / "loadtest" / "bracket.py"
RUN_TIMEOUT_S = 240


def _load_bracket() -> Any:
    spec = importlib.util.spec_from_file_location("arus_loadtest_bracket", BRACKET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


bracket = _load_bracket()


def _aggregate(requests: int, failures: int, p99_ms: float | None) -> dict[str, Any]:
    return {"requests": requests, "failures": failures, "p99_ms": p99_ms}


def test_bracket_within_slo_passes() -> None:
    assert bracket.judge(_aggregate(1000, 0, 120.0), bracket.Slo(p99_ms=250)) == []


def test_p99_at_the_bound_fails() -> None:
    reasons = bracket.judge(_aggregate(1000, 0, 250.0), bracket.Slo(p99_ms=250))
    assert len(reasons) == 1 and reasons[0].startswith("p99 250 ms"), reasons


def test_any_unexpected_failure_breaks_a_zero_error_slo() -> None:
    reasons = bracket.judge(_aggregate(1000, 1, 10.0), bracket.Slo(max_error_rate=0.0))
    assert len(reasons) == 1 and "1 of 1000 requests failed" in reasons[0], reasons


def test_error_budget_allows_failures_up_to_the_rate() -> None:
    slo = bracket.Slo(max_error_rate=0.01, p99_ms=250)
    assert bracket.judge(_aggregate(1000, 10, 10.0), slo) == []
    assert bracket.judge(_aggregate(1000, 11, 10.0), slo) != []


def test_bracket_without_requests_fails() -> None:
    assert bracket.judge(_aggregate(0, 0, None), bracket.Slo()) == ["no request completed"]


def test_ceiling_is_the_fastest_passing_bracket_and_the_first_failure_is_kept() -> None:
    runs = [
        {"users": 1, "rps": 90.0, "passed": True},
        {"users": 2, "rps": 150.0, "passed": True},
        {"users": 4, "rps": 140.0, "passed": True},
        {"users": 8, "rps": 160.0, "passed": False},
        {"users": 16, "rps": 170.0, "passed": False},
    ]
    ceiling, first_failed = bracket.summarize(runs)
    assert ceiling["users"] == 2, ceiling
    assert first_failed["users"] == 8, first_failed
    assert bracket.summarize(runs[3:]) == (None, runs[3])
    assert bracket.summarize(runs[:1]) == (runs[0], None)


def _run(database_url: str, out: Path, *extra: str) -> dict[str, Any]:
    """The harness migrates and creates its ledger: it is given the owner's URL."""
    command = [
        sys.executable, str(BRACKET), "--run-time", "3", "--customers", "6",
        "--workers", "1", "--threads", "2", "--out", str(out), *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command,
        env={**os.environ, "ARUS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=REPO,
    )
    assert result.returncode == 0, f"bracket.py exited {result.returncode}: {result.stderr}"
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    report["_markdown"] = (out / "report.md").read_text()
    report["_stdout"] = result.stdout
    return report


def _assert_bracket_shape(run: dict[str, Any], users: int) -> None:
    assert run["users"] == users
    assert run["requests"] > 0, run
    for key in ("rps", "new_entries_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert isinstance(run[key], int | float), (key, run[key])
    assert run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"], run
    names = {e["name"] for e in run["endpoints"]}
    assert "POST /v1/entries uniform" in names, names
    assert {"server_s", "locust_s", "machine_busy_s", "wall_s"} <= set(run["cpu"]), run["cpu"]


def _assert_verified(report: dict[str, Any], customers: int) -> None:
    verify = report["verify"]
    assert verify["exit_code"] == 0 and verify["ok"], verify
    ours = verify["load_ledger"]
    assert ours["balanced"] and not ours["drift"] and ours["ledger_seq_gap_free"], ours
    # Every 201 the load generator saw is a committed entry (plus one funding entry each).
    entries = report["entries"]
    assert entries["committed_by_brackets"] == ours["entries"] - customers
    assert entries["committed_by_brackets"] >= entries["acknowledged_by_201"] > 0, entries


@pytest.mark.slow
def test_brackets_that_meet_the_slo_publish_a_ceiling(
    owner_database_url: str, tmp_path: Path
) -> None:
    # No latency bound: a bracket fails only if a request broke the contract.
    report = _run(owner_database_url, tmp_path, "--users", "1,2", "--slo-p99-ms", "1e9")
    runs = report["brackets"]
    assert [b["users"] for b in runs] == [1, 2], runs
    for run, users in zip(runs, (1, 2), strict=True):
        _assert_bracket_shape(run, users)
        assert run["passed"] and run["failures"] == 0, (run["reasons"], run["errors"])
        assert run["expected_rejections"] >= 0
    assert report["first_failed"] is None
    fastest = max(runs, key=lambda b: b["rps"])
    assert report["ceiling"]["users"] == fastest["users"]
    assert report["ceiling"]["rps"] == fastest["rps"]
    assert report["postgres"]["fsync"] in ("on", "off")
    assert report["server"]["kind"] == "arus-serve"
    _assert_verified(report, customers=6)
    assert f"**Ceiling: {fastest['rps']:g} requests/s**" in report["_markdown"]
    assert "No bracket failed" in report["_markdown"]


@pytest.mark.slow
def test_run_stops_at_the_first_failed_bracket_and_says_why(
    owner_database_url: str, tmp_path: Path
) -> None:
    # p99 < 0 ms cannot be met: the first bracket fails, and the second never runs.
    report = _run(owner_database_url, tmp_path, "--users", "1,2", "--slo-p99-ms", "0")
    runs = report["brackets"]
    assert [b["users"] for b in runs] == [1], runs
    _assert_bracket_shape(runs[0], 1)
    assert not runs[0]["passed"]
    assert runs[0]["reasons"] == [f"p99 {runs[0]['p99_ms']:g} ms >= SLO 0 ms"], runs[0]
    assert report["ceiling"] is None
    assert report["first_failed"]["users"] == 1
    assert report["first_failed"]["reasons"] == runs[0]["reasons"]
    _assert_verified(report, customers=6)
    assert "No bracket passed the SLO" in report["_markdown"]
    assert "**First failed bracket: 1 users**" in report["_markdown"]
    assert not list(tmp_path.glob("users-002*")), "a bracket ran after the first failure"
