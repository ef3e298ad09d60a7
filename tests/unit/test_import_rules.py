"""Which part of the project may import which: the import graph, read from the source
(every ``import`` and ``from … import``, those inside functions and under
``TYPE_CHECKING`` too), checked against the table :data:`ALLOWED`.

The walk runs in a subprocess (this file run as a script), so what the pytest process
happens to have imported does not count. Run it by hand to see the graph:
``python tests/unit/test_import_rules.py --graph``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "ptychowire",
    "ptychobench",
    "services",
    "gateway",
    "training",
    "ptychoagent",
    "benchmarks",
)
"""The top-level packages of the project (tests/ is not one)."""

UNITS = (
    "ptychowire",
    "ptychobench",
    "services.common",
    "services.diagnosis",
    "services.ptycho_agent",
    "services.retriever",
    "services.reconstructor",
    "gateway",
    "training",
    "ptychoagent.client",
    "ptychoagent",
    "benchmarks",
)
"""The parts the rules speak of; a module belongs to the first one it is in (so
``ptychoagent.client`` before ``ptychoagent``). The bare ``services`` namespace belongs to
``services.common``."""

SERVICES = (
    "services.diagnosis",
    "services.ptycho_agent",
    "services.retriever",
    "services.reconstructor",
)
SERVER = ("ptychowire", "ptychobench", "services.common", *SERVICES, "gateway")

ALLOWED: Mapping[str, frozenset[str]] = {
    # The wire contract is pydantic and the standard library: every process imports it.
    "ptychowire": frozenset(),
    # The core library builds on the wire's vocabularies (labels, Strategy); no web, no service.
    "ptychobench": frozenset({"ptychowire"}),
    # What every service shares: the contract and the library, never a service.
    "services.common": frozenset({"ptychowire", "ptychobench"}),
    # A service: the contract, the library, the shared code; never another service.
    **{
        service: frozenset({"ptychowire", "ptychobench", "services.common"}) for service in SERVICES
    },
    # The gateway speaks to the services over HTTP through the contract, never their code,
    # and never imports the CLI package (the client is the caller's side).
    "gateway": frozenset({"ptychowire", "ptychobench", "services.common"}),
    # Training fits models on the library's data; it serves nothing.
    "training": frozenset({"ptychowire", "ptychobench"}),
    # The typed client a beamline imports: the contract only, nothing of the server.
    "ptychoagent.client": frozenset({"ptychowire"}),
    # The command line starts and administers the whole stack (keys, databases, the
    # benchmark runner, training), so it may import any server part.
    "ptychoagent": frozenset({*SERVER, "training", "ptychoagent.client"}),
    # Benchmarks measure every layer, in process too: anything but each other's scripts.
    "benchmarks": frozenset({*SERVER, "training", "ptychoagent.client", "ptychoagent"}),
}

KNOWN: frozenset[tuple[str, str]] = frozenset(
    {
        # The image decoder moves into ptychobench (one image path); until then the
        # classifier's training reads images as the diagnosis service does.
        ("training.classifier", "services.diagnosis.images"),
    }
)
"""Arrows against the rules that are known and due to go; each must still exist (a test
says so), so that a fixed one is struck from here."""

WIRE_THIRD_PARTY = frozenset({"pydantic"})
"""What ``ptychowire`` may import besides the standard library."""


class Import(NamedTuple):
    module: str
    path: str
    line: int
    target: str


def unit_of(module: str) -> str | None:
    if module == "services":
        return "services.common"
    for unit in UNITS:
        if module == unit or module.startswith(unit + "."):
            return unit
    return None


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: str, source: str) -> Iterable[Import]:
    """Every module ``source`` (the file at ``path``, relative to the root) imports,
    relative imports resolved."""
    module = _module_name(path)
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield Import(module, path, node.lineno, target)


def project_imports(root: Path, extra: Mapping[str, str] | None = None) -> list[Import]:
    """The imports of every module of the project's packages, plus ``extra`` (path →
    source, added or in place of a file)."""
    sources = {
        str(path.relative_to(root)): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }
    sources.update(extra or {})
    return [found for path, source in sources.items() for found in imports_of(path, source)]


def violations(imports: Iterable[Import]) -> list[str]:
    """Each import against the rules, as ``path:line: unit -> unit (import target)``."""
    found = []
    for imp in imports:
        source, top = unit_of(imp.module), imp.target.split(".")[0]
        if source is None:
            continue
        if source == "ptychowire" and top not in PACKAGES:
            if top not in sys.stdlib_module_names and top not in WIRE_THIRD_PARTY:
                found.append(f"{imp.path}:{imp.line}: ptychowire -> {top} (import {imp.target})")
            continue
        target = unit_of(imp.target) if top in PACKAGES else None
        if target is None or target == source or target in ALLOWED[source]:
            continue
        if any(imp.module == a and imp.target.startswith(b) for a, b in KNOWN):
            continue
        found.append(f"{imp.path}:{imp.line}: {source} -> {target} (import {imp.target})")
    return found


def graph(imports: Iterable[Import]) -> dict[str, int]:
    edges: dict[str, int] = {}
    for imp in imports:
        source, target = unit_of(imp.module), unit_of(imp.target)
        if source and target and source != target:
            edge = f"{source} -> {target}"
            edges[edge] = edges.get(edge, 0) + 1
    return dict(sorted(edges.items()))


def known_still_present(imports: Iterable[Import]) -> list[str]:
    present = {(imp.module, imp.target) for imp in imports}
    return sorted(
        f"{a} -> {b}" for a, b in KNOWN if not any(m == a and t.startswith(b) for m, t in present)
    )


def _check(extra: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Run the walk in a fresh interpreter: this file as a script, ``extra`` on stdin."""
    out = subprocess.run(
        [sys.executable, __file__, "--check"],
        input=json.dumps(extra or {}),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, list[str]] = json.loads(out)
    return result


def test_every_import_follows_the_rules() -> None:
    assert _check()["violations"] == []


def test_every_known_exception_is_still_there() -> None:
    assert _check()["stale"] == [], "strike the fixed arrows from KNOWN"


def test_an_added_arrow_is_reported_with_its_module_and_line() -> None:
    extra = {
        "gateway/x.py": '"""A stray import."""\n\nimport json\n\n\ndef f():\n'
        "    from services.diagnosis.service import DiagnosisService\n",
        "ptychowire/y.py": "import httpx\nfrom ptychobench.labels import Task\n",
        "services/retriever/z.py": "from ..diagnosis import images\n",
    }
    assert _check(extra)["violations"] == [
        "gateway/x.py:7: gateway -> services.diagnosis (import services.diagnosis.service)",
        "ptychowire/y.py:1: ptychowire -> httpx (import httpx)",
        "ptychowire/y.py:2: ptychowire -> ptychobench (import ptychobench.labels)",
        "services/retriever/z.py:1: services.retriever -> services.diagnosis "
        "(import services.diagnosis)",
    ]


def test_every_unit_has_a_rule() -> None:
    assert set(ALLOWED) == set(UNITS)


if __name__ == "__main__":
    if "--graph" in sys.argv:
        for edge, count in graph(project_imports(ROOT)).items():
            print(f"{edge}  ({count})")
    else:
        found = project_imports(ROOT, json.loads(sys.stdin.read() or "{}"))
        print(json.dumps({"violations": violations(found), "stale": known_still_present(found)}))
