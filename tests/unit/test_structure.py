"""The server package has no import cycles, at module level or inside functions (issue 9)."""

from __future__ import annotations

import ast

from tests.support.ledgers import REPO

PACKAGE = REPO / "shared" / "arus"


def import_graph() -> dict[str, set[str]]:
    modules = {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): path
        for path in PACKAGE.rglob("*.py")
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_no_import_cycles():
    graph = import_graph()
    assert "arus.http" in graph and "arus.posting" in graph["arus.http"]
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "open":
            cycles.append([*path[path.index(name) :], name])
            return
        if state.get(name) == "done":
            return
        state[name] = "open"
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])
    assert cycles == [], [" -> ".join(cycle) for cycle in cycles]
