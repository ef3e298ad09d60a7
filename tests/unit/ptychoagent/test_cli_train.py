"""`ptychoagent train …`: what cannot train is refused before anything loads, with what
to do; several datasets train together; and the shipped VLM serve and bench
configurations fit together."""

from __future__ import annotations

import json
from collections.abc import Callable
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
    registry = Registry(ROOT / "artifacts" / "registry.json")
    for adapter in engine.adapters:
        assert (ROOT / adapter.path / "adapter_model.safetensors").is_file()
        assert registry.get(adapter.name).task.value == "detection"
    for name in ("default.yaml", "full.yaml", "vlm.yaml", "vlm-k0.yaml"):
        config = load_bench(ROOT / "deploy" / "bench" / name)
        vlm_rows = [m for m in config.models[Task.DETECTION] if m.backend == "vlm"]
        assert {m.adapter for m in vlm_rows} == served, name
    assert engine.limit_mm_per_prompt == {"image": 8}  # k up to 7, and the query


def test_classifier_trains_on_several_datasets_together(
    handmade: Callable[..., Path], tmp_path: Path
) -> None:
    from ptychobench.classifier import MODEL_FILE
    from ptychobench.data import LABELSTUDIO_SPLIT, open_datasets
    from training.classifier import data_hash

    ours, theirs = handmade("ours", seed=1), handmade("theirs", kind="labelstudio", seed=2)
    out = tmp_path / "both"
    registry = tmp_path / "registry.json"
    command = ["train", "classifier", "--data", str(ours), "--data", str(theirs), "--out", str(out)]
    result = CliRunner().invoke(app, [*command, "--registry", str(registry), "--version", "3"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(registry.read_text())["artifacts"]  # it registers itself
    assert entry["kind"] == "classifier"
    assert entry["name"] == "both"
    assert (Registry(registry).root / entry["path"]).resolve() == out.resolve()
    assert f"training classifier both on {ours} + {theirs}" in result.output
    assert "a Label Studio export" in result.output  # says how the export was split
    record = json.loads((out / MODEL_FILE).read_text())
    assert record["version"] == "3"
    data = record["data"]
    assert entry["data_hash"] == data["hash"]
    assert entry["metrics"]["test_micro_f1"] == record["metrics"]["test"]["micro_f1"]["point"]
    assert record["config"]["dataset"] == data["dataset"] == [str(ours), str(theirs)]
    together = open_datasets([ours, theirs])
    splits = {s: together.samples(Task.DETECTION, s) for s in ("train", "test")}
    assert (data["train"], data["test"]) == (9 + 9, 3 + 3)
    assert data["hash"] == data_hash(splits)  # covers every dataset's samples
    assert data["splits_made"] == {str(theirs): LABELSTUDIO_SPLIT}
    card = (out / "README.md").read_text()
    assert f"`ptychoagent train classifier --data {ours} --data {theirs} --version 3`" in card
    refused = CliRunner().invoke(app, [*command, "--backbone-components", "-1"])
    assert refused.exit_code == 2
    assert "backbone-components" in refused.output

    alone = tmp_path / "alone"
    single = CliRunner().invoke(
        app, ["train", "classifier", "--data", str(ours), "--out", str(alone), "--no-register"]
    )
    assert single.exit_code == 0, single.output
    record = json.loads((alone / MODEL_FILE).read_text())
    assert record["config"]["dataset"] == record["data"]["dataset"] == str(ours)
    assert "splits_made" not in record["data"]
    assert record["data"]["hash"] != data["hash"]


def test_training_refuses_datasets_that_share_ids_before_loading_anything(
    handmade: Callable[..., Path], tmp_path: Path
) -> None:
    first, twin = handmade("first", seed=3), handmade("twin", seed=3)
    out = tmp_path / "never"
    for command in (["classifier"], ["agent", "--base", str(tmp_path / "no-model")]):
        result = CliRunner().invoke(
            app,
            ["train", *command, "--data", str(first), "--dataset", str(twin), "--out", str(out)],
        )
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "is also in" in lines[0]
        assert "datasets used together need distinct ids" in lines[0]
        assert not out.exists()


def test_a_missing_dataset_is_one_line_for_every_trainer(tmp_path: Path) -> None:
    for trainer in ("agent", "diagnosis", "classifier"):
        result = CliRunner().invoke(app, ["train", trainer, "--dataset", str(tmp_path / "nowhere")])
        assert result.exit_code == 2, (trainer, result.output)
        assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such file or directory"


def test_agent_refuses_shots_that_are_not_counts_and_an_unknown_profile(tmp_path: Path) -> None:
    for flags, message in (
        (["--shots", "0,three"], "--shots must be comma-separated whole numbers"),
        (["--shots", "0,-1"], "shots.1\n  Input should be greater than or equal to 0"),
        (["--profile", "slow"], "--profile must be cpu, fast, fewshot or paper"),
    ):
        result = CliRunner().invoke(
            app, ["train", "agent", *flags, "--out", str(tmp_path / "a"), "--no-register"]
        )
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "a").exists()
