"""README.md tells the truth about the tree: every path its layout table names exists, every
part of the server package has a row, the modules a row names live where it says, and every
relative link (from the README, or into its sections from docs/) resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PACKAGE = REPO / "shared" / "arus"

ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
NAME = re.compile(r"`([a-z_][a-z0-9_]*)`")  # a module or folder named in a row's description


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end == -1 else end]


def _expand(path: str) -> list[str]:
    """`a/{b,c}/x.py` names two paths."""
    braces = re.search(r"\{([^}]*)\}", path)
    if braces is None:
        return [path]
    head, tail = path[: braces.start()], path[braces.end() :]
    return [p for part in braces.group(1).split(",") for p in _expand(head + part + tail)]


def layout_rows(text: str) -> list[tuple[str, str]]:
    """(path, description) of each row of the README's layout table."""
    rows = [ROW.match(line) for line in _section(text, "Layout").splitlines()]
    return [(m.group(1), m.group(2)) for m in rows if m is not None]


def missing_paths(rows: list[tuple[str, str]], root: Path) -> list[str]:
    return [p for path, _ in rows for p in _expand(path) if not (root / p).exists()]


def package_parts(package: Path, root: Path) -> set[str]:
    """The package's own modules and subpackages, as paths from `root`."""
    parts = {f"{p.relative_to(root)}" for p in package.glob("*.py") if p.name != "__init__.py"}
    return parts | {f"{p.parent.relative_to(root)}/" for p in package.glob("*/__init__.py")}


def misplaced_names(rows: list[tuple[str, str]], root: Path) -> list[str]:
    """Modules or folders a folder's row names that are nowhere under that folder."""
    found = []
    for path, description in rows:
        folder = root / path
        if not path.endswith("/") or not folder.is_dir():
            continue
        under = {p.stem for p in folder.rglob("*") if "__pycache__" not in p.parts}
        found += [f"{path}: `{n}`" for n in NAME.findall(description) if n not in under]
    return found


def broken_links(markdown: Path) -> list[str]:
    """Relative links of a Markdown file whose target file does not exist."""
    broken = []
    for target in LINK.findall(markdown.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not (markdown.parent / target.split("#")[0]).is_file():
            broken.append(target)
    return broken


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_path_of_the_layout_table_exists() -> None:
    rows = layout_rows(README.read_text())
    assert len(rows) > 10, rows
    assert missing_paths(rows, REPO) == []


def test_every_module_and_subpackage_of_the_server_package_has_a_row() -> None:
    named = {p for path, _ in layout_rows(README.read_text()) for p in _expand(path)}
    parts = package_parts(PACKAGE, REPO)
    assert len(parts) > 5, parts
    assert sorted(parts - named) == [], "add a row to README.md's layout table for each"


def test_modules_a_row_names_live_under_its_folder() -> None:
    assert misplaced_names(layout_rows(README.read_text()), REPO) == []


def test_every_relative_link_of_the_readme_resolves_to_a_file() -> None:
    assert len(LINK.findall(README.read_text())) > 10
    assert broken_links(README) == []


def test_every_relative_link_of_the_walkthrough_resolves_to_a_file() -> None:
    """docs/walkthrough.md holds what the README used to: its links moved with it."""
    assert broken_links(REPO / "docs" / "walkthrough.md") == []


def test_links_into_the_readmes_sections_name_a_heading() -> None:
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", README.read_text(), re.M)}
    wrong = [
        f"{page.relative_to(REPO)}: #{anchor}"
        for page in sorted((REPO / "docs").rglob("*.md"))
        for anchor in re.findall(r"README\.md#([\w-]+)", page.read_text())
        if anchor not in anchors
    ]
    assert wrong == []


def test_the_checks_catch_a_wrong_path_a_missing_row_and_a_broken_link(tmp_path: Path) -> None:
    """The helpers above fail on what they are meant to catch, not only pass on this tree."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for name in ("pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py"):
        (tmp_path / name).write_text("")
    text = (
        "# T\n\n## Layout\n\n| path | what |\n| --- | --- |\n"
        "| `pkg/a.py` | a |\n| `pkg/{sub,gone}/` | `b` and `c` |\n\n## Links\n"
    )
    rows = layout_rows(text)
    assert missing_paths(rows, tmp_path) == ["pkg/gone/"]
    assert misplaced_names(rows, tmp_path) == []  # `pkg/{sub,gone}/` is not a folder's row
    assert misplaced_names([("pkg/sub/", "`b` and `c`")], tmp_path) == ["pkg/sub/: `c`"]
    assert package_parts(tmp_path / "pkg", tmp_path) == {"pkg/a.py", "pkg/sub/"}
    page = tmp_path / "page.md"
    page.write_text("[ok](pkg/a.py) [gone](pkg/b.py#x) [web](https://example.com) [here](#t)")
    assert broken_links(page) == ["pkg/b.py#x"]
