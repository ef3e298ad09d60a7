"""`ptychoagent train vlm-base|diagnosis`: what cannot train is refused before anything
loads, with what to do; and the shipped VLM serve and bench configurations fit together."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.bench.config import load_config as load_bench
from ptychoagent.adapters import Registry
from ptychoagent.cli import app
from ptychoagent.engine import load_config
from ptychobench.labels import Task

ROOT = Path(__file__).resolve().parents[3]


def test_vlm_base_refuses_a_missing_release(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "vlm-base", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no release at" in result.output
    assert "ptychoagent sim" in result.output


def test_diagnosis_refuses_a_text_only_base(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = CliRunner().invoke(
        app, ["train", "diagnosis", "--base", str(tmp_path), "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 1
    assert "not a vision-language checkpoint" in result.output
    assert not (tmp_path / "a").exists()


def test_the_vlm_rows_of_the_sweeps_name_what_the_vlm_engine_serves() -> None:
    engine = load_config(ROOT / "deploy" / "vllm" / "cpu-vlm.yaml")
    served = {engine.base_name, *(adapter.name for adapter in engine.adapters)}
    registry = Registry(ROOT / "adapters" / "registry.json")
    for adapter in engine.adapters:
        assert (ROOT / adapter.path / "adapter_model.safetensors").is_file()
        assert registry.get(adapter.name).task.value == "detection"
    for name in ("default.yaml", "full.yaml", "vlm.yaml", "vlm-k0.yaml"):
        config = load_bench(ROOT / "deploy" / "bench" / name)
        vlm_rows = [m for m in config.models[Task.DETECTION] if m.backend == "vlm"]
        assert {m.adapter for m in vlm_rows} == served, name
    assert engine.limit_mm_per_prompt == {"image": 8}  # k up to 7, and the query
