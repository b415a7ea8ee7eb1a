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
    assert "arus.web.app" in graph and "arus.ledger.gateway" in graph["arus.web.app"]
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


# The server's layers, lowest first: a module imports only from its own layer or one below it
# (docs/architecture.md has the same table).
LAYERS = ("rules", "errors", "platform", "ledger", "outbox", "admin", "jobs", "web", "tools")


def _layer(module: str) -> int:
    name = module.split(".")[1] if "." in module else ""
    assert name in LAYERS, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return LAYERS.index(name)


def test_every_module_imports_only_its_own_layer_or_lower():
    graph = {name: targets for name, targets in import_graph().items() if name != "arus"}
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if target != "arus" and _layer(target) > _layer(name)
    )
    assert len(graph) > 40, sorted(graph)
    assert upward == [], upward


def test_the_package_has_no_flat_modules_but_rules_and_errors():
    flat = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert flat == ["errors.py", "rules.py"]
