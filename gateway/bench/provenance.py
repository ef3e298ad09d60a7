"""What a benchmark run is made with (its provenance), kept in its record, and the check
that refuses to resume a run whose adapters, prompts or data set changed since it began.

:func:`collect` gathers, for a configuration: each configured model with its adapter,
the adapter's SHA-256 (:func:`ptychobench.provenance.adapter_sha256`) and, where the
services say, the engine URL and served model name that answer it; the prompts' version
and hash; the data set's path and hash; package versions, git revision and machine.
:func:`changes` says, in words, what differs between a recorded provenance and the
current one in what the answers depend on (adapters, prompts, data set).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.bench.config import BenchConfig, task_name
from ptychobench.provenance import (
    adapter_sha256,
    machine,
    package_versions,
    prompt_identity,
    sha256_tree,
)

log = logging.getLogger(__name__)

Engines = Mapping[str, Mapping[str, Any]]
"""What each service says of itself (``GET /info``) by task: ``engine_url``,
``served_model`` and ``adapters`` (served name → SHA-256)."""


def collect(
    config: BenchConfig,
    root: Path,
    git_revision: str | None = None,
    engines: Engines | None = None,
    project: Path | None = None,
) -> dict[str, Any]:
    """The provenance of a run of ``config``: its data set read from ``root``, adapters
    from the registry of ``project`` (default ``root``) unless the services said their
    hash (``engines``)."""
    engines = engines or {}
    project = project or root
    models: list[dict[str, Any]] = []
    adapters: dict[str, str | None] = {}
    for task, specs in sorted(config.models.items(), key=lambda entry: task_name(entry[0])):
        name = task_name(task)
        engine = engines.get(name, {})
        served = engine.get("served_model")
        for spec in specs:
            adapter = None if spec.backend == "classifier" else spec.adapter or served
            if adapter is not None:
                known = (engine.get("adapters") or {}).get(adapter)
                adapters[adapter] = known or adapter_sha256(adapter, project)
            models.append(
                {
                    "task": name,
                    "name": spec.name,
                    "adapter": adapter,
                    "backend": spec.backend,
                    "engine_url": engine.get("engine_url"),
                    "served_model": adapter,
                }
            )
    dataset = Path(config.dataset)
    return {
        "adapters": dict(sorted(adapters.items())),
        "models": models,
        "prompt": prompt_identity(),
        "dataset": {
            "path": config.dataset,
            "sha256": sha256_tree(dataset if dataset.is_absolute() else root / dataset),
        },
        "packages": package_versions(),
        "git_revision": git_revision,
        "machine": machine(),
    }


def changes(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """What differs, in words, between a run's recorded provenance and the current one,
    in what its answers depend on (adapter hashes, prompt hash, data set hash). A run
    recorded before provenance was kept has nothing to compare: no change."""
    if not recorded:
        return []
    found: list[str] = []
    was, now = recorded.get("adapters") or {}, current.get("adapters") or {}
    for name in sorted(set(was) & set(now)):
        if was[name] != now[name]:
            found.append(
                f"adapter {name!r} changed (sha256 {_short(was[name])} → {_short(now[name])})"
            )
    for part in ("prompt", "dataset"):
        before = (recorded.get(part) or {}).get("sha256")
        after = (current.get(part) or {}).get("sha256")
        if before != after:
            found.append(f"{part} changed (sha256 {_short(before)} → {_short(after)})")
    return found


def _short(digest: object) -> str:
    return "none" if digest is None else str(digest)[:12]


__all__ = ["Engines", "changes", "collect"]
