"""Per-function deployable sources: a directory and a reproducible zip for each function.

Cloud Run functions build only what is uploaded, so each bundle is self-contained:

    <out_dir>/<name>/main.py            the thin entry point from functions/<name>/
    <out_dir>/<name>/requirements.txt   locks/functions.txt, byte for byte: the whole runtime
                                        tree pinned (==) with sha256 hashes, so the build's
                                        `pip install -r` runs in hash-checking mode and installs
                                        exactly the packages the tests installed
    <out_dir>/<name>/arus/              a vendored copy of shared/arus (no caches, no bytecode)
    <out_dir>/<name>.zip                the same files, byte for byte reproducible

One lock serves the four functions: each vendors the whole of shared/arus and imports it through
arus.web.functions, so all need the same tree, pyproject.toml's [project].dependencies and no
extra (Kafka, the one optional transport, is local only). A second lock would only be a copy.
`make lock` compiles it (uv pip compile --generate-hashes, for LOCK_ENVIRONMENT: the python311
runtime on Linux x86_64). A bundle is refused while the lock does not match pyproject.toml
(lock_problems), so a dependency added there cannot ship unlocked, and nothing of the machine
that builds the bundle (its installed versions) reaches the zip.

The zip holds only file entries, in sorted order, each stamped 1980-01-01 00:00:00 with mode
0644 and deflated at level 9, so the same sources and lock give the same sha256 (on the same
zlib). Terraform names the uploaded object after that hash, which is what redeploys a function
exactly when its code or lock change. `arus` itself is never a requirement: it is vendored.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

FUNCTIONS = ("post_entry", "query", "relay", "daily_close")
REPO_ROOT = Path(__file__).resolve().parents[3]
LOCK_PATH = Path("locks", "functions.txt")  # relative to the checkout; every function's tree
LOCK_COMMAND = "make lock"
# The environment the lock is compiled for (`make lock` passes the same Python): Cloud Run
# functions' python311 runtime (terraform/modules/functions) on Linux x86_64. A dependency whose
# marker is false there is not expected in the lock.
LOCK_ENVIRONMENT = {
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o100644  # regular file, rw-r--r--
ZIP_COMPRESS_LEVEL = 9
EXCLUDED_DIRS = frozenset({"__pycache__"})
EXCLUDED_SUFFIXES = frozenset({".pyc", ".pyo"})
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
_OPTION = re.compile(r"\s+(?=--)")


class BundleError(Exception):
    """The bundle cannot be built from these sources (the message says what to fix)."""


@dataclass(frozen=True)
class BundleResult:
    function: str
    directory: Path
    zip_path: Path
    sha256: str
    zip_bytes: int
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "directory": str(self.directory),
            "zip": str(self.zip_path),
            "sha256": self.sha256,
            "zip_bytes": self.zip_bytes,
            "files": self.files,
        }


@dataclass(frozen=True)
class LockedPackage:
    """One requirement of a lock: `name[extras]==version --hash=sha256:...`."""

    name: str  # canonical (PEP 503)
    extras: frozenset[str]
    version: str
    hashes: tuple[str, ...]
    direct: bool  # compiled as a dependency of pyproject.toml (`# via ... (pyproject.toml)`)
    line: int


def parse_lock(text: str) -> tuple[list[LockedPackage], list[str]]:
    """The packages of a hashed requirements file and what is wrong with it.

    Every requirement must be a plain `==` pin (no URL, no wildcard) carrying at least one
    sha256 hash, and nothing but requirements and comments may appear: an option such as
    `--index-url` or `-e` would let the install reach outside the lock.
    """
    blocks: list[tuple[int, str, list[str]]] = []  # (first line, logical line, comments after)
    continuing = False
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        body = stripped.removesuffix("\\")
        if continuing:
            first, logical, comments = blocks[-1]
            blocks[-1] = (first, f"{logical} {body}", comments)
        elif stripped.startswith("#"):
            if blocks:
                blocks[-1][2].append(stripped)
        elif stripped:
            blocks.append((number, body, []))
        continuing = stripped != body and not stripped.startswith("#")
    packages: list[LockedPackage] = []
    problems: list[str] = []
    for number, logical, comments in blocks:
        requirement_text, *options = _OPTION.split(logical.strip())
        where = f"line {number}"
        if requirement_text.startswith("-"):
            problems.append(f"{where}: {requirement_text!r} is an option, not a pinned package")
            continue
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            problems.append(f"{where}: cannot parse {requirement_text!r} ({exc})")
            continue
        pins = list(requirement.specifier)
        if requirement.url or len(pins) != 1 or pins[0].operator != "==" or "*" in pins[0].version:
            problems.append(f"{where}: {requirement_text!r} is not pinned with == to one version")
            continue
        hashes = tuple(option for option in options if _HASH.fullmatch(option))
        other = [option for option in options if not _HASH.fullmatch(option)]
        if other:
            problems.append(f"{where}: {requirement.name} has options other than sha256 hashes")
        if not hashes:
            problems.append(f"{where}: {requirement.name} has no --hash=sha256:...")
        packages.append(
            LockedPackage(
                name=canonicalize_name(requirement.name),
                extras=frozenset(canonicalize_name(extra) for extra in requirement.extras),
                version=pins[0].version,
                hashes=hashes,
                direct=any("(pyproject.toml)" in comment for comment in comments),
                line=number,
            )
        )
    return packages, problems


def lock_problems(pyproject: Path, lock: Path) -> list[str]:
    """What keeps `lock` from being the locked tree of pyproject's [project].dependencies.

    Empty when every entry is pinned and hashed (parse_lock), every direct dependency is locked
    with the extras it asks for at a version its specifier allows, and nothing is locked as a
    direct dependency that pyproject no longer lists.
    """
    if not lock.is_file():
        return [f"{lock} does not exist"]
    packages, problems = parse_lock(lock.read_text(encoding="utf-8"))
    locked: dict[str, LockedPackage] = {}
    for package in packages:
        if package.name in locked:
            problems.append(f"line {package.line}: {package.name} is locked twice")
        locked[package.name] = package
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    own_name = canonicalize_name(project.get("name", ""))
    wanted: set[str] = set()
    for text in project.get("dependencies", []):
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            problems.append(f"cannot parse dependency {text!r} in {pyproject} ({exc})")
            continue
        name = canonicalize_name(requirement.name)
        marker = requirement.marker
        if name == own_name or (marker is not None and not marker.evaluate(LOCK_ENVIRONMENT)):
            continue
        wanted.add(name)
        pin = locked.get(name)
        if pin is None:
            problems.append(f"{text!r} is in pyproject.toml but not in the lock")
            continue
        if not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{text!r} does not allow the locked {name}=={pin.version}")
        missing = {canonicalize_name(extra) for extra in requirement.extras} - pin.extras
        if missing:
            problems.append(f"{text!r}: the lock has {name} without [{','.join(sorted(missing))}]")
    for package in packages:
        if package.direct and package.name not in wanted:
            problems.append(
                f"{package.name} is locked for pyproject.toml, which no longer lists it"
            )
    if not wanted:
        problems.append(f"{pyproject} lists no [project].dependencies")
    return problems


def locked_requirements(repo: Path) -> bytes:
    """The bytes of the repo's lock, once it matches its pyproject.toml; else BundleError."""
    lock = repo / LOCK_PATH
    problems = lock_problems(repo / "pyproject.toml", lock)
    if problems:
        raise BundleError(
            f"{lock} is not the locked tree of {repo / 'pyproject.toml'}; run `{LOCK_COMMAND}`"
            " and commit the lock:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )
    return lock.read_bytes()


def _source_files(root: Path) -> Iterator[Path]:
    """Every file under root except caches and bytecode, in a stable order."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        for filename in sorted(files):
            path = Path(directory, filename)
            if path.suffix not in EXCLUDED_SUFFIXES and not filename.startswith("."):
                yield path


def _check_entry_point(main_py: Path, function: str) -> None:
    tree = ast.parse(main_py.read_text(encoding="utf-8"), filename=str(main_py))
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if function not in names:
        raise BundleError(f"{main_py} defines no function {function!r} (the deploy target)")


def _check_out_dir(out_dir: Path, repo: Path) -> None:
    """Refuse an out_dir where building would write into, or delete, the sources."""
    for source in (repo / "shared", repo / "functions"):
        if out_dir.is_relative_to(source):
            raise BundleError(f"out_dir {out_dir} is inside the sources in {source}")
    for function in FUNCTIONS:
        if repo.is_relative_to(out_dir / function):
            raise BundleError(f"building {out_dir / function} would delete the checkout {repo}")


def write_reproducible_zip(directory: Path, zip_path: Path) -> tuple[str, int]:
    """Zip every file under directory (paths relative to it); returns (sha256 hex, file count)."""
    tmp_path = zip_path.with_name(zip_path.name + ".tmp")
    count = 0
    with zipfile.ZipFile(tmp_path, "w") as archive:
        entries = sorted(
            (path.relative_to(directory).as_posix(), path) for path in _source_files(directory)
        )
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr carries the mode below
            info.external_attr = ZIP_FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=ZIP_COMPRESS_LEVEL)
            count += 1
    os.replace(tmp_path, zip_path)
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    return digest, count


def build_bundle(
    function: str, out_dir: Path, *, requirements: bytes, repo: Path = REPO_ROOT
) -> BundleResult:
    """Build out_dir/<function>/ from scratch, then out_dir/<function>.zip from it."""
    if function not in FUNCTIONS:
        raise BundleError(f"unknown function {function!r}; expected one of {', '.join(FUNCTIONS)}")
    main_py = repo / "functions" / function / "main.py"
    package = repo / "shared" / "arus"
    if not main_py.is_file() or not (package / "__init__.py").is_file():
        raise BundleError(f"{repo} is not an Arus checkout (need {main_py} and {package})")
    _check_entry_point(main_py, function)

    bundle_dir = out_dir / function
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    (bundle_dir / "arus").mkdir(parents=True)
    shutil.copyfile(main_py, bundle_dir / "main.py")
    (bundle_dir / "requirements.txt").write_bytes(requirements)
    for source in _source_files(package):
        target = bundle_dir / "arus" / source.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    zip_path = out_dir / f"{function}.zip"
    sha256, files = write_reproducible_zip(bundle_dir, zip_path)
    return BundleResult(
        function=function,
        directory=bundle_dir,
        zip_path=zip_path,
        sha256=sha256,
        zip_bytes=zip_path.stat().st_size,
        files=files,
    )


def build_bundles(
    out_dir: Path, *, functions: Sequence[str] | None = None, repo: Path = REPO_ROOT
) -> list[BundleResult]:
    """Build the bundles of `functions` (default: all four) under out_dir, in that order."""
    selected = list(FUNCTIONS if functions is None else functions)
    unknown = sorted(set(selected) - set(FUNCTIONS))
    if unknown:
        raise BundleError(
            f"unknown function(s) {', '.join(unknown)}; expected some of {', '.join(FUNCTIONS)}"
        )
    repo = repo.resolve()
    out_dir = out_dir.resolve()
    _check_out_dir(out_dir, repo)
    out_dir.mkdir(parents=True, exist_ok=True)
    requirements = locked_requirements(repo)
    return [
        build_bundle(function, out_dir, requirements=requirements, repo=repo)
        for function in selected
    ]
