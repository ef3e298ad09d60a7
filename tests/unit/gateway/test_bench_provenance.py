"""A benchmark run's record says what made it (adapter hashes, engines, prompts, data,
packages, machine), and a run whose adapter changed under the same name is not resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.bench.config import BenchConfig, parse_config
from gateway.bench.provenance import changes, collect
from gateway.bench.records import ItemResult
from gateway.bench.report import build_report, render_markdown
from gateway.bench.runner import run_record
from gateway.bench.store import RunChangedError, RunStore
from ptychobench.prompts import PROMPT_VERSION
from ptychobench.provenance import sha256_tree
from services.common.database import make_engine

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


def _project(tmp_path: Path, weights: bytes = b"weights-1") -> Path:
    """A project folder with one registered adapter, ``sft-a``."""
    folder = tmp_path / "artifacts" / "adapters" / "sft-a"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 16}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("notes do not count")
    entry = {"kind": "adapter", "name": "sft-a", "path": "artifacts/adapters/sft-a"}
    (tmp_path / "artifacts" / "registry.json").write_text(json.dumps({"artifacts": [entry]}))
    return tmp_path


def _config() -> BenchConfig:
    return parse_config(
        {
            "dataset": str(DATASET),
            "tasks": ["recommendation"],
            "models": {"recommendation": [{"name": "sft", "adapter": "sft-a"}, {"name": "base"}]},
            "limit": 1,
        }
    )


def test_the_provenance_names_adapters_engines_prompts_data_and_machine(tmp_path: Path) -> None:
    project = _project(tmp_path)
    engines = {
        "recommendation": {
            "engine_url": "http://engine:8011/v1",
            "served_model": "base-model",
            "adapters": {"base-model": None},
        }
    }
    found = collect(_config(), ROOT, "abc123", engines, project)
    weights = sha256_tree(project / "artifacts" / "adapters" / "sft-a", {".md"})
    assert found["adapters"] == {"base-model": None, "sft-a": weights}
    assert found["models"] == [
        {
            "task": "recommendation",
            "name": "sft",
            "adapter": "sft-a",
            "backend": None,
            "engine_url": "http://engine:8011/v1",
            "served_model": "sft-a",
        },
        {
            "task": "recommendation",
            "name": "base",
            "adapter": "base-model",
            "backend": None,
            "engine_url": "http://engine:8011/v1",
            "served_model": "base-model",
        },
    ]
    assert found["prompt"]["version"] == PROMPT_VERSION
    assert len(found["prompt"]["sha256"]) == 64
    assert found["dataset"] == {"path": str(DATASET), "sha256": sha256_tree(DATASET)}
    assert {"python", "pydantic", "fastapi", "torch", "transformers", "vllm"} <= set(
        found["packages"]
    )
    assert found["git_revision"] == "abc123"
    assert found["machine"]["cpu_count"] >= 1


def test_a_changed_adapter_under_the_same_name_is_not_resumed(
    tmp_path: Path, database_url: str
) -> None:
    config = _config()
    project = _project(tmp_path / "project")
    engine = make_engine(database_url)
    try:
        runs = RunStore(engine)
        runs.create_schema()
        before = collect(config, ROOT, None, None, project)
        run, _ = runs.open(config, 4, None, "test", provenance=before)
        assert runs.get(run.id).provenance == before
        again, _ = runs.open(config, 4, None, "test", provenance=before)
        assert again.id == run.id  # nothing changed: resumed

        _project(tmp_path / "project", weights=b"weights-2")  # retrained, same name
        after = collect(config, ROOT, None, None, project)
        assert changes(before, after) == [
            f"adapter 'sft-a' changed (sha256 {before['adapters']['sft-a'][:12]} → "
            f"{after['adapters']['sft-a'][:12]})"
        ]
        with pytest.raises(RunChangedError, match="adapter 'sft-a' changed") as refused:
            runs.open(config, 4, None, "test", provenance=after)
        assert refused.value.http_status == 409
        assert "--restart" in str(refused.value)
        assert runs.get(run.id).provenance == before  # the old run is left as it was

        fresh, done = runs.open(config, 4, None, "test", True, after)
        assert fresh.id != run.id
        assert done == set()
        assert runs.get(fresh.id).provenance == after
    finally:
        engine.dispose()


def test_a_changed_prompt_or_dataset_is_a_change_too_and_old_runs_have_none() -> None:
    base = {"adapters": {"a": "1"}, "prompt": {"sha256": "p"}, "dataset": {"sha256": "d"}}
    assert changes(None, base) == []  # a run recorded before provenance was kept
    assert changes(base, {**base, "packages": {"torch": "9"}}) == []  # not what answers
    assert changes(base, {**base, "prompt": {"sha256": "q"}}) == ["prompt changed (sha256 p → q)"]
    assert changes(base, {**base, "dataset": {"sha256": None}}) == [
        "dataset changed (sha256 d → none)"
    ]


def test_the_report_header_shows_the_provenance(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from gateway.bench.store import RunInfo

    made_with = collect(_config(), ROOT, "abc123", None, _project(tmp_path))
    now = datetime(2026, 12, 7, tzinfo=UTC)
    info = RunInfo(
        "run-1",
        "unit",
        "c0ffee",
        {},
        "finished",
        1,
        1,
        0,
        "",
        "abc123",
        "test",
        None,
        now,
        now,
        now,
        made_with,
    )
    item = ItemResult(
        "recommendation",
        "sft",
        "sft-a",
        "none",
        0,
        0,
        "s1",
        "Zeolite",
        ("A",),
        ("A",),
        prompt_sha256=made_with["prompt"]["sha256"],
    )
    report = build_report([item], run_record(info, "data"), n_resamples=10)
    assert report.run["provenance"] == made_with
    markdown = render_markdown(report)
    assert f"| prompt sha256 | {made_with['prompt']['sha256']} |" in markdown
    assert f"| adapter sft-a | {made_with['adapters']['sft-a']} |" in markdown
