"""Ledgers placed on two real PostgreSQL instances (SPEC §9): keys route each request to their
placement, each instance holds only its own ledgers' rows, one instance stopped fails only its
own ledgers, and migrate, the relay, the close and verify run over both.

Each instance is a cluster of its own on a Unix socket in a temporary folder, on a clock the test
can move forward (libfaketime, as in tests/support/faked_clock.py), so the close can close
"yesterday" of ledgers created today.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from arus.jobs import close, verify
from arus.outbox import relay
from arus.platform.config import Settings, load_settings
from arus.platform.db import create_engine, dispose_engines
from arus.web.app import create_app

from tests.support.faked_clock import (
    FakedClock,
    faked_clock_env,
    init_cluster,
    pg_ctl,
    socket_options,
    stop_cluster,
)
from tests.support.ledgers import Api, Ledger

APP_USER = "arus_placement_app"
PLACEMENTS = ("east", "west")
ENTRY = {"postings": [{"account": "cash", "direction": "debit", "amount": 5},
                      {"account": "equity", "direction": "credit", "amount": 5}]}  # fmt: skip


@dataclass
class Instance:
    name: str
    root: Path
    data: Path
    clock: FakedClock

    @property
    def owner_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.root}"

    @property
    def app_url(self) -> str:
        return f"postgresql://{APP_USER}@/postgres?host={self.root}"

    def start(self) -> None:
        env = faked_clock_env(FAKETIME_TIMESTAMP_FILE=str(self.clock.offset_file))
        pg_ctl(self.data, *socket_options(self.root), "start", env=env)

    def stop(self) -> None:
        stop_cluster(self.data)

    def count(self, table: str) -> int:
        engine = create_engine(Settings(database_url=self.owner_url))
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
        finally:
            engine.dispose()


def _placements(instances: dict[str, Instance], url: str) -> str:
    return ",".join(f"{name}={getattr(i, url)}" for name, i in instances.items())


def _arus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arus.tools.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def instances() -> Iterator[dict[str, Instance]]:
    made: dict[str, Instance] = {}
    try:
        for name in PLACEMENTS:
            root = Path(tempfile.mkdtemp(prefix=f"arus-{name}-"))
            instance = Instance(name, root, init_cluster(root), FakedClock(root / "faketime"))
            instance.clock.offset_file.write_text("+0\n")
            instance.clock.offset_file.chmod(0o644)
            made[name] = instance
            instance.start()
        yield made
    finally:
        dispose_engines()
        for instance in made.values():
            instance.stop()
            shutil.rmtree(instance.root, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_env(instances: dict[str, Instance]) -> dict[str, str]:
    return {**os.environ, "ARUS_PLACEMENTS": _placements(instances, "owner_url")}


@pytest.fixture(scope="module")
def ledgers(instances: dict[str, Instance], admin_env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Both placements migrated and given the API's login by the CLI; a ledger on each."""
    migrated = _arus(admin_env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    revisions = json.loads(migrated.stdout)
    assert set(revisions["placements"]) == set(PLACEMENTS) and revisions["schema_revision"]
    made = {}
    for name in PLACEMENTS:
        user = _arus(admin_env, "app-user", APP_USER, "--placement", name)
        assert user.returncode == 0, user.stderr
        created = _arus(admin_env, "ledger", "create", f"books-{name}", "--placement", name)
        assert created.returncode == 0, created.stderr
        made[name] = json.loads(created.stdout)
        assert made[name]["placement"] == name
        assert made[name]["write_key"].startswith(f"arus_{name}_")
    return made


@pytest.fixture(scope="module")
def owner_settings(admin_env: dict[str, str]) -> Settings:
    return load_settings({"ARUS_PLACEMENTS": admin_env["ARUS_PLACEMENTS"]})


@pytest.fixture(scope="module")
def api(instances: dict[str, Instance], ledgers: dict[str, dict[str, str]]) -> Api:
    settings = load_settings({"ARUS_PLACEMENTS": _placements(instances, "app_url"),
                              "ARUS_DB_POOL_SIZE": "4"})  # fmt: skip
    client = create_app(settings).test_client()
    answer = Api(client, client)
    for made in ledgers.values():
        ledger = Ledger(uuid.UUID(made["ledger_id"]), made["write_key"], made["read_key"])
        answer.account(ledger, "cash")
        answer.account(ledger, "equity", "equity", allow_negative=True)
    return answer


def _post(api: Api, key: str) -> Any:
    return api.post("/v1/entries", key=key, idempotency_key=uuid.uuid4().hex, json=ENTRY)


def test_each_key_is_served_by_its_placement_and_each_instance_holds_only_its_rows(
    api, ledgers, instances
):
    for ledger in ledgers.values():
        assert _post(api, ledger["write_key"]).status_code == 201
    for name, instance in instances.items():
        engine = create_engine(Settings(database_url=instance.owner_url))
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT DISTINCT ledger_id::text FROM entries")
                                      ).scalars())  # fmt: skip
        engine.dispose()
        assert owners == {ledgers[name]["ledger_id"]}, name


def _renamed(key: str, placement: str) -> str:
    """The same key id and secret, naming another placement (or none: `main`)."""
    _, _, rest = key.partition("_")
    _, _, id_and_secret = rest.partition("_")
    return f"arus_{placement}_{id_and_secret}" if placement else f"arus_{id_and_secret}"


@pytest.mark.parametrize("placement", ["west", "north", ""])
def test_a_key_is_refused_on_any_placement_but_its_own(api, ledgers, placement):
    forged = _renamed(ledgers["east"]["write_key"], placement)
    answer = _post(api, forged)
    assert answer.status_code == 401, answer.get_json()
    assert api.get("/v1/accounts", key=_renamed(ledgers["east"]["read_key"], placement)
                   ).status_code == 401  # fmt: skip


def test_a_storm_on_both_placements_at_once_loses_nothing(api, ledgers, instances):
    before = {name: instance.count("entries") for name, instance in instances.items()}
    jobs = [ledgers[name]["write_key"] for name in PLACEMENTS for _ in range(60)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda key: _post(api, key).status_code, jobs))
    assert statuses == [201] * len(jobs)
    for name, instance in instances.items():
        assert instance.count("entries") == before[name] + 60, name


def test_a_stopped_instance_fails_only_its_own_ledgers(api, ledgers, instances, owner_settings):
    west = instances["west"]
    before = west.count("entries")
    west.stop()
    try:
        for _ in range(5):
            down = _post(api, ledgers["west"]["write_key"])
            assert down.status_code == 503, down.get_json()
            assert down.headers["Retry-After"] == "1"
            assert _post(api, ledgers["east"]["write_key"]).status_code == 201
        assert api.get("/v1/accounts", key=ledgers["east"]["read_key"]).status_code == 200
        report = verify.verify_everywhere(owner_settings)
        assert not report["ok"] and "west" in report["placements"]
        assert report["placements"]["east"] == "ok"
        outcome = relay.run_once(owner_settings)
        assert outcome.error is not None and "placement west" in outcome.error
        assert outcome.published > 0  # east's events went out
    finally:
        west.start()
    # Served again at once, and nothing acknowledged before the stop is lost.
    assert west.count("entries") == before
    assert _post(api, ledgers["west"]["write_key"]).status_code == 201
    assert verify.verify_everywhere(owner_settings)["ok"]


def test_an_instance_stopped_mid_storm_loses_nothing_it_acknowledged(api, ledgers, instances):
    """Writers on both placements for a few seconds; west stops while they run and starts again.
    East answers 201 throughout; west answers 201 or 503, and every west entry acknowledged is
    there after (a 503 may or may not have committed before the stop)."""
    west = instances["west"]
    before = west.count("entries")
    stopped = threading.Event()
    deadline = time.monotonic() + 4.0

    def writer(placement: str) -> list[tuple[bool, int]]:
        seen = []
        while time.monotonic() < deadline:
            status = _post(api, ledgers[placement]["write_key"]).status_code
            seen.append((stopped.is_set(), status))
        return seen

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        running = [pool.submit(writer, name) for name in PLACEMENTS for _ in range(2)]
        time.sleep(1.0)
        west.stop()
        stopped.set()
        time.sleep(1.0)
        west.start()
        answers = {name: [a for f in running[i * 2:i * 2 + 2] for a in f.result()]
                   for i, name in enumerate(PLACEMENTS)}  # fmt: skip
    assert {status for _, status in answers["east"]} == {201}
    assert any(s == 201 for after, s in answers["east"] if after)  # east went on meanwhile
    west_statuses = [status for _, status in answers["west"]]
    assert 503 in west_statuses and set(west_statuses) <= {201, 503}, set(west_statuses)
    acknowledged, unknown = west_statuses.count(201), west_statuses.count(503)
    assert acknowledged <= west.count("entries") - before <= acknowledged + unknown


def test_the_relay_and_the_close_drain_and_close_both(api, ledgers, instances, owner_settings):
    for ledger in ledgers.values():
        assert _post(api, ledger["write_key"]).status_code == 201
    drained = relay.run_once(owner_settings)
    assert drained.error is None and drained.published > 0
    for instance in instances.values():
        unpublished = instance.count("outbox_events WHERE published_at IS NULL")
        assert unpublished == 0, instance.name
    for instance in instances.values():
        instance.clock.advance(86_400 + 120)  # past tomorrow's midnight and the close's grace
    day = _database_day(instances["east"]) - dt.timedelta(days=1)
    reports = close.close_all(owner_settings, day)
    assert {r["placement"] for r in reports} == set(PLACEMENTS)
    assert all(r["ok"] for r in reports), reports
    assert sorted(str(r["ledger_id"]) for r in reports) == sorted(
        ledger["ledger_id"] for ledger in ledgers.values()
    )


def _database_day(instance: Instance) -> Any:
    engine = create_engine(Settings(database_url=instance.owner_url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    finally:
        engine.dispose()
