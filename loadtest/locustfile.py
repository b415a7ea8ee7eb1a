"""Locust scenarios for Arus: posting (uniform and one hot account), replays, overdrafts, reads.

The ledger, its keys and its accounts are made up front by loadtest/bracket.py, which hands
them over in the JSON file named by ARUS_LOADTEST_FIXTURE:

    {"write_key": "...", "read_key": "...", "hot_account": "funding",
     "customers": ["cust-000", ...]}

ARUS_LOADTEST_SCENARIO picks the task mix (default `mixed`):

- `mixed`   every task below, weighted like a busy wallet ledger (60% new entries)
- `uniform` only entries between two random customer accounts
- `hot`     only entries that all touch the one funding account
- `reads`   only reads

Each user sends its next request as soon as the last one is answered (no think time), so a
bracket of N users keeps at most N requests in flight. Outcomes are checked, not just status
codes: a new entry must be a 201, a replay must be a 200 with `Idempotent-Replayed: true` and
the original entry's id, an overdraft must be a 422 `insufficient_funds`. The overdraft
rejections are expected; they are counted as successes under a name that says so, so a
bracket's failure count holds only what broke the contract.

When ARUS_LOADTEST_SUMMARY names a file, the final statistics are written there as JSON when
locust quits, after every user has stopped (locust's own --csv files are refreshed once a
second and miss the last second of a run).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events
from locust.env import Environment

SCENARIOS = ("mixed", "uniform", "hot", "reads")
EXPECTED_REJECTION = "(expected 422)"
AMOUNT_MAX_MINOR = 100  # customers are funded with FUNDING_MINOR each (bracket.py)
OVERDRAFT_MINOR = 10**15  # more than any customer can ever hold in a run
REPLAY_MEMORY = 50  # keys each user remembers for replays


def _load_fixture() -> dict[str, Any]:
    path = os.environ.get("ARUS_LOADTEST_FIXTURE")
    if not path:
        raise RuntimeError(
            "ARUS_LOADTEST_FIXTURE is unset: run the load test through loadtest/bracket.py, "
            "which creates the ledger and its accounts first"
        )
    fixture: dict[str, Any] = json.loads(Path(path).read_text())
    assert fixture["customers"], "the fixture names no customer accounts"
    return fixture


FIXTURE = _load_fixture()
SCENARIO = os.environ.get("ARUS_LOADTEST_SCENARIO", "mixed")
if SCENARIO not in SCENARIOS:
    raise RuntimeError(f"ARUS_LOADTEST_SCENARIO must be one of {SCENARIOS}, not {SCENARIO!r}")


def _transfer(debit: str, credit: str, amount_minor: int, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "postings": [
            {"account": debit, "direction": "debit", "amount": amount_minor},
            {"account": credit, "direction": "credit", "amount": amount_minor},
        ],
    }


def _error_code(response: Any) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no JSON error body"


class LedgerClient(FastHttpUser):
    """One API client with a write and a read key; its tasks, unweighted (see LedgerUser)."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.write_headers = {"Authorization": f"Bearer {FIXTURE['write_key']}"}
        self.read_headers = {"Authorization": f"Bearer {FIXTURE['read_key']}"}
        self.customers: list[str] = FIXTURE["customers"]
        self.hot: str = FIXTURE["hot_account"]
        self.posted: deque[tuple[str, dict[str, Any], str]] = deque(maxlen=REPLAY_MEMORY)

    def _two_customers(self) -> tuple[str, str]:
        debit, credit = random.sample(self.customers, 2)
        return debit, credit

    def _post_new(self, body: dict[str, Any], name: str) -> None:
        key = uuid.uuid4().hex
        headers = {**self.write_headers, "Idempotency-Key": key}
        with self.client.post(
            "/v1/entries", json=body, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code} {_error_code(response)}")
                return
            self.posted.append((key, body, response.json()["id"]))
            response.success()

    def post_uniform(self) -> None:
        debit, credit = self._two_customers()
        amount = random.randint(1, AMOUNT_MAX_MINOR)
        self._post_new(
            _transfer(debit, credit, amount, "load: uniform"), "POST /v1/entries uniform"
        )

    def post_hot(self) -> None:
        # The funding account may go negative: every entry locks its balance row.
        amount = random.randint(1, AMOUNT_MAX_MINOR)
        body = _transfer(self.hot, random.choice(self.customers), amount, "load: hot")
        self._post_new(body, "POST /v1/entries hot")

    def replay(self) -> None:
        if not self.posted:
            self.post_uniform()
            return
        key, body, entry_id = random.choice(self.posted)
        headers = {**self.write_headers, "Idempotency-Key": key}
        with self.client.post(
            "/v1/entries",
            json=body,
            headers=headers,
            name="POST /v1/entries replay",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"replay: {response.status_code} {_error_code(response)}")
            elif response.headers.get("Idempotent-Replayed") != "true":
                response.failure("replay: no Idempotent-Replayed: true header")
            elif response.json()["id"] != entry_id:
                response.failure("replay: answered with another entry than the original")
            else:
                response.success()

    def overdraft(self) -> None:
        debit, credit = self._two_customers()
        body = _transfer(debit, credit, OVERDRAFT_MINOR, "load: overdraft")
        headers = {**self.write_headers, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/v1/entries",
            json=body,
            headers=headers,
            name=f"POST /v1/entries overdraft {EXPECTED_REJECTION}",
            catch_response=True,
        ) as response:
            code = _error_code(response)
            if response.status_code == 422 and code == "insufficient_funds":
                response.success()
            else:
                response.failure(f"overdraft: {response.status_code} {code}")

    def get_account(self) -> None:
        code = random.choice(self.customers)
        with self.client.get(
            f"/v1/accounts/{code}",
            headers=self.read_headers,
            name="GET /v1/accounts/{code}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} {_error_code(response)}")
            elif response.json()["code"] != code:
                response.failure("answered with another account")
            else:
                response.success()

    def list_entries(self) -> None:
        with self.client.get(
            "/v1/entries?limit=20",
            headers=self.read_headers,
            name="GET /v1/entries?limit=20",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} {_error_code(response)}")
            elif not isinstance(response.json().get("data"), list):
                response.failure("no data list in the page")
            else:
                response.success()


_MIXES: dict[str, dict[Callable[[LedgerClient], None], int]] = {
    "mixed": {
        LedgerClient.post_uniform: 8,
        LedgerClient.post_hot: 4,
        LedgerClient.replay: 2,
        LedgerClient.overdraft: 1,
        LedgerClient.get_account: 3,
        LedgerClient.list_entries: 2,
    },
    "uniform": {LedgerClient.post_uniform: 1},
    "hot": {LedgerClient.post_hot: 1},
    "reads": {LedgerClient.get_account: 3, LedgerClient.list_entries: 2},
}


class LedgerUser(LedgerClient):
    """The user locust runs: LedgerClient's tasks weighted by ARUS_LOADTEST_SCENARIO."""

    tasks = _MIXES[SCENARIO]  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# The final statistics, for bracket.py.
# ---------------------------------------------------------------------------------------------

PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
_environment: list[Environment] = []


@events.init.add_listener
def _remember_environment(environment: Environment, **_kwargs: Any) -> None:
    _environment.append(environment)


def _entry_summary(entry: Any) -> dict[str, Any]:
    counted = entry.num_requests - entry.num_none_requests
    return {
        "name": entry.name,
        "method": entry.method,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.total_rps,
        "avg_ms": entry.avg_response_time if counted else None,
        **{
            key: entry.get_response_time_percentile(p) if counted else None
            for key, p in PERCENTILES.items()
        },
        "max_ms": entry.max_response_time if counted else None,
    }


@events.quit.add_listener
def _write_summary(**_kwargs: Any) -> None:
    path = os.environ.get("ARUS_LOADTEST_SUMMARY")
    if not path or not _environment:
        return
    stats = _environment[0].stats
    summary = {
        "duration_s": (stats.last_request_timestamp or 0) - (stats.start_time or 0),
        "aggregate": _entry_summary(stats.total),
        "endpoints": [_entry_summary(e) for e in stats.entries.values() if e.num_requests],
        "errors": [
            {"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
            for e in stats.errors.values()
        ],
    }
    Path(path).write_text(json.dumps(summary, indent=2))
