"""docs/architecture.md names files that exist where it says (issue 9)."""

from __future__ import annotations

import re

from tests.support.ledgers import REPO

# Where a path in the page may be relative to: the repository, the server package, the
# consumer distribution, or docs/ itself (for links).
ROOTS = (REPO, REPO / "shared/arus", REPO / "clients/python", REPO / "docs")
PATH = re.compile(r"`([A-Za-z0-9_./*{},-]+\.(?:py|sql|md)|[A-Za-z0-9_.-]+/[A-Za-z0-9_./*-]*)`")


def _expand(path: str) -> list[str]:
    """`a/{b,c}.py` names two files."""
    braces = re.search(r"\{([^}]*)\}", path)
    if braces is None:
        return [path]
    head, tail = path[: braces.start()], path[braces.end() :]
    return [p for part in braces.group(1).split(",") for p in _expand(head + part + tail)]


def test_every_file_the_architecture_page_names_exists():
    text = (REPO / "docs/architecture.md").read_text()
    named = {p for match in PATH.finditer(text) for p in _expand(match.group(1))}
    named |= set(re.findall(r"\]\(([^)#]+)", text))  # links
    assert len(named) > 30, sorted(named)
    missing = [
        path for path in sorted(named)
        if not any(list(root.glob(path.rstrip("/"))) for root in ROOTS)
    ]  # fmt: skip
    assert missing == [], missing
