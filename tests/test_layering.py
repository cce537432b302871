"""The packages import only downwards: ondisk <- shipper <- agents <- query (docs/architecture.md).

Every import counts, at module level, inside functions and under TYPE_CHECKING: an import against the
flow is a cycle waiting to happen, and in shipper it would make a service that only emits load (or fail
on) the agent's dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each package and the packages it may import (besides itself).
ALLOWED = {
    "ondisk": set(),
    "shipper": {"ondisk"},
    "agents": {"ondisk", "shipper"},
    "query": {"ondisk", "shipper", "agents"},
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "auditship" and len(parts) > 1:
        return parts[1]
    return parts[0] if parts[0] in ALLOWED else None


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_module_imports_against_the_flow() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imported(ast.parse(path.read_text(), str(path))):
                target = _package(module)
                if target is not None and target != package and target not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == []


def test_the_checked_packages_are_all_there_are() -> None:
    """A new top-level package gets its place in ALLOWED (and in the architecture doc's map)."""
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench", "auditship"}
    assert packages == set(ALLOWED)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_import_cycles() -> None:
    """No module reaches itself through imports, wherever they are written (`from a import b` counts as
    an import of `a.b` when that is a module)."""
    modules = {
        _module_name(path): path for package in ALLOWED for path in sorted((ROOT / package).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for imported in names:
                local = imported.removeprefix("auditship.")
                if local in modules and local != name and not name.startswith(f"{local}."):
                    targets.add(local)
        graph[name] = targets
    cycles = [cycle for cycle in _strongly_connected(graph) if len(cycle) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (a recursion per module would be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found
