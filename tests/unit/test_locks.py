"""locks/functions.txt is the locked tree of pyproject.toml's runtime dependencies (issue 19).

Every bundle ships the lock as its requirements.txt, so what Cloud Run functions install is
what the bundle test installed. The lock must therefore follow pyproject.toml: each direct
dependency locked at a version its specifier allows, with its extras, and every package pinned
with sha256 hashes (`pip install --require-hashes` refuses anything less). When pyproject.toml
changes, `make lock` recompiles the lock.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import hcl2
from arus.tools.bundle import LOCK_COMMAND, LOCK_ENVIRONMENT, LOCK_PATH, lock_problems, parse_lock

from tests.support.ledgers import REPO

PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / LOCK_PATH
RUN_MAKE_LOCK = f"run `{LOCK_COMMAND}` and commit {LOCK_PATH}"


def pyproject_with(tmp_path: Path, dependencies: list[str]) -> Path:
    """A pyproject.toml naming the project `arus` with these [project].dependencies."""
    path = tmp_path / "pyproject.toml"
    listed = ", ".join(json.dumps(dependency) for dependency in dependencies)
    path.write_text(f'[project]\nname = "arus"\ndependencies = [{listed}]\n')
    return path


def runtime_dependencies() -> list[str]:
    """The direct dependencies the lock was compiled from, as pins: a pyproject it matches.

    The tests of the checker start from these rather than from pyproject.toml, so that only
    test_the_lock_matches_pyproject fails while pyproject.toml is ahead of the lock.
    """
    packages, _ = parse_lock(LOCK.read_text())
    return [
        f"{p.name}{'[' + ','.join(sorted(p.extras)) + ']' if p.extras else ''}=={p.version}"
        for p in packages
        if p.direct
    ]


def test_the_lock_matches_pyproject() -> None:
    problems = lock_problems(PYPROJECT, LOCK)
    assert problems == [], (
        f"{LOCK_PATH} is not the locked tree of pyproject.toml's [project].dependencies;"
        f" {RUN_MAKE_LOCK}:\n" + "\n".join(f"  - {problem}" for problem in problems)
    )


def test_every_locked_package_is_pinned_with_hashes() -> None:
    packages, problems = parse_lock(LOCK.read_text())
    assert problems == [], f"{RUN_MAKE_LOCK}:\n" + "\n".join(problems)
    unhashed = [package.name for package in packages if not package.hashes]
    assert unhashed == [], f"locked without --hash: {unhashed}; {RUN_MAKE_LOCK}"
    direct = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert len(packages) > len(direct), "the whole tree, not only the direct dependencies"
    entries = [line for line in LOCK.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line)]
    assert len(entries) == len(packages), "every requirement line was read"


def test_a_dependency_the_lock_lacks_fails_and_says_run_make_lock(tmp_path: Path) -> None:
    added = "a-package-never-locked>=1.0"
    problems = lock_problems(pyproject_with(tmp_path, [*runtime_dependencies(), added]), LOCK)
    assert problems == [f"{added!r} is in pyproject.toml but not in the lock"]


def test_the_checker_accepts_the_tree_it_was_compiled_from(tmp_path: Path) -> None:
    assert len(runtime_dependencies()) >= 10
    assert lock_problems(pyproject_with(tmp_path, runtime_dependencies()), LOCK) == []


def test_a_specifier_the_locked_version_misses_fails(tmp_path: Path) -> None:
    dependencies = [d for d in runtime_dependencies() if not d.startswith("flask")]
    problems = lock_problems(pyproject_with(tmp_path, [*dependencies, "flask>=99"]), LOCK)
    assert len(problems) == 1
    assert problems[0].startswith("'flask>=99' does not allow the locked flask==")


def test_an_extra_the_lock_was_compiled_without_fails(tmp_path: Path) -> None:
    dependencies = [d for d in runtime_dependencies() if not d.startswith("flask")]
    problems = lock_problems(pyproject_with(tmp_path, [*dependencies, "flask[async]>=3"]), LOCK)
    assert problems == ["'flask[async]>=3': the lock has flask without [async]"]


def test_a_dependency_pyproject_dropped_fails(tmp_path: Path) -> None:
    dependencies = [d for d in runtime_dependencies() if not d.startswith("rich")]
    problems = lock_problems(pyproject_with(tmp_path, dependencies), LOCK)
    assert problems == ["rich is locked for pyproject.toml, which no longer lists it"]


def test_a_dependency_for_another_python_is_not_expected(tmp_path: Path) -> None:
    other = 'tomli>=2 ; python_version < "3.11"'
    problems = lock_problems(pyproject_with(tmp_path, [*runtime_dependencies(), other]), LOCK)
    assert problems == []


def test_loose_unhashed_and_optional_entries_are_refused() -> None:
    digest = "0" * 64
    text = (
        "# header\n"
        f"flask==3.1.3 \\\n    --hash=sha256:{digest}\n    # via arus (pyproject.toml)\n"
        "sqlalchemy>=2.0 \\\n    --hash=sha256:" + digest + "\n"
        "pg8000==1.31.6\n"
        "--extra-index-url https://example.invalid/simple\n"
        f"rich==15.0.0 --hash=md5:{'0' * 32}\n"
    )
    packages, problems = parse_lock(text)
    assert [(p.name, p.version, p.direct) for p in packages] == [
        ("flask", "3.1.3", True),
        ("pg8000", "1.31.6", False),
        ("rich", "15.0.0", False),
    ]
    assert problems == [
        "line 5: 'sqlalchemy>=2.0' is not pinned with == to one version",
        "line 7: pg8000 has no --hash=sha256:...",
        "line 8: '--extra-index-url https://example.invalid/simple' is an option,"
        " not a pinned package",
        "line 9: rich has options other than sha256 hashes",
        "line 9: rich has no --hash=sha256:...",
    ]


def test_the_lock_is_compiled_for_the_functions_runtime() -> None:
    """Makefile's LOCK_PYTHON, the markers' environment and Terraform's runtime agree."""
    makefile = (REPO / "Makefile").read_text()
    (lock_python,) = re.findall(r"^LOCK_PYTHON := (\S+)$", makefile, re.MULTILINE)
    with (REPO / "terraform" / "modules" / "functions" / "variables.tf").open() as handle:
        variables = hcl2.load(handle)["variable"]
    # python-hcl2 >= 7 keeps the quotes of names and string literals; older versions do not.
    defaults = {name.strip('"'): body.get("default") for v in variables for name, body in v.items()}
    assert str(defaults["runtime"]).strip('"') == "python" + lock_python.replace(".", "")
    assert LOCK_ENVIRONMENT["python_version"] == lock_python
