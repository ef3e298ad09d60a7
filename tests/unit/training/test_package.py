"""training/ is a package of rooms: no import cycle, no private name imported across
modules (an ast scan, so imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _imports() -> dict[str, dict[str, set[str]]]:
    """Module → imported training module → names imported from it."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / "training").rglob("*.py")
    }
    found: dict[str, dict[str, set[str]]] = {}
    for module, path in modules.items():
        edges: dict[str, set[str]] = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                names = {alias.name for alias in node.names}
                edges.setdefault(node.module, set()).update(names)
                for name in names:
                    if f"{node.module}.{name}" in modules:
                        edges.setdefault(f"{node.module}.{name}", set())
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        edges.setdefault(alias.name, set())
        edges.pop(module, None)
        found[module] = edges
    return found


def test_training_has_no_import_cycle() -> None:
    graph = {module: set(edges) for module, edges in _imports().items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_private_name_crosses_a_module() -> None:
    crossing = [
        f"{module} imports {name} from {target}"
        for module, edges in _imports().items()
        for target, names in edges.items()
        for name in names
        if name.startswith("_")
    ]
    assert not crossing, crossing
