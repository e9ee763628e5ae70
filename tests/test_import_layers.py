"""The house's arrows: every import points down the layers of docs/architecture.md, and no module reaches
itself through its imports, counting the ones written inside functions (a hidden import is still an arrow).

Layers, bottom up: contracts (avro_schemas) → foundation → producers | streams → sinks → read_side | synthetic
→ ops. Packages on one layer don't import each other. The test reads the source with ``ast``; it runs nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.project_layout import PACKAGES

ROOT = Path(__file__).resolve().parent.parent
LAYERS: dict[str, int] = {
    "avro_schemas": 0,
    "foundation": 1,
    "producers": 2,
    "streams": 2,
    "sinks": 3,
    "read_side": 4,
    "synthetic": 4,
    "ops": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in LAYERS for p in (ROOT / package).rglob("*.py") if "build" not in p.parts}


def _imported(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(project module imported, line) for every import statement of ``path``, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            candidates = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for name in candidates:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    modules = project_modules()
    return {m: dict(_imported(m, p, modules)) for m, p in modules.items()}


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        own = module.split(".")[0]
        for target, line in targets.items():
            theirs = target.split(".")[0]
            if own != theirs and LAYERS[theirs] >= LAYERS[own]:
                found.append(f"{module}:{line} imports {target} ({own} may only import layers below it)")
    return sorted(found)


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_top_level_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}
    assert packages == set(LAYERS) == set(PACKAGES), (
        "add a new package to LAYERS, pyproject.toml and docs/architecture.md"
    )


def test_no_import_points_up():
    assert upward_imports(import_graph()) == []


def test_no_import_circle():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    ("graph", "up", "circles"),
    [
        ({"streams.a": {"ops.b": 3}, "ops.b": {}}, ["streams.a:3 imports ops.b"], []),
        ({"streams.a": {"producers.b": 1}, "producers.b": {}}, ["streams.a:1 imports producers.b"], []),
        (
            {"ops.a": {"streams.b": 1}, "streams.b": {"streams.c": 2}, "streams.c": {"streams.b": 5}},
            [],
            [["streams.b", "streams.c"]],
        ),
    ],
)
def test_the_checks_catch_what_they_are_for(graph, up, circles):
    assert [u.split(" (")[0] for u in upward_imports(graph)] == up
    assert cycles(graph) == circles
