"""The command line and the light library modules start fast: heavy packages load only
inside the functions that need them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "ptychi", "faiss", "peft", "transformers", "sklearn", "scipy", "fastapi")


def _loaded_after(statement: str) -> set[str]:
    code = (
        f"import sys, json; {statement}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def test_the_cli_loads_neither_heavy_packages_nor_numpy() -> None:
    loaded = _loaded_after("import ptychoagent.cli")
    assert loaded.isdisjoint({*HEAVY, "numpy"}), loaded & {*HEAVY, "numpy"}


@pytest.mark.parametrize(
    "module",
    [
        "ptychobench",
        "ptychobench.data",
        "ptychobench.prompts",
        "ptychobench.parsing",
        "ptychobench.captions",
        "ptychobench.changes",
        "ptychobench.metrics",
        "ptychobench.bootstrap",
        "ptychobench.selection",
        "ptychobench.sim",
        "ptychobench.features",
        "ptychobench.classifier",
        "ptychobench.canonical",
        "ptychobench.report",
    ],
)
def test_library_modules_do_not_load_heavy_packages(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_the_gateway_client_loads_no_server_side_packages() -> None:
    loaded = _loaded_after("import ptychoagent.client")
    server = {*HEAVY, "sqlalchemy", "starlette", "uvicorn", "prometheus_client"}
    assert loaded.isdisjoint(server), loaded & server


def test_the_wire_contract_loads_pydantic_and_nothing_of_the_project() -> None:
    loaded = _loaded_after(
        "import ptychowire, ptychowire.gateway, ptychowire.refine, ptychowire.reconstructor, "
        "ptychowire.retriever"
    )
    other = {*HEAVY, "numpy", "httpx", "starlette", "sqlalchemy"}
    project = {"ptychobench", "services", "gateway", "training", "ptychoagent", "benchmarks"}
    assert loaded.isdisjoint(other | project), loaded & (other | project)
