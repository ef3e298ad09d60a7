"""The closed-loop task of a benchmark configuration: which items it plans, and the
datasets and model names it refuses."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from gateway.bench.config import CLOSED_LOOP, BenchConfigError, parse_config, plan
from ptychobench.closed_loop import BASELINE_ARMS, open_release

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


def test_the_closed_loop_asks_the_recommendation_models_beside_the_baselines() -> None:
    config = parse_config(
        {
            "dataset": str(DATASET),
            "tasks": ["recommendation", "closed_loop"],
            "k": [0, 3],
            "strategies": ["ssfs", "rfs"],
            "seeds": [0, 1],
            "limit": 2,
        }
    )
    assert config.hash() != config.model_copy(update={"tasks": config.tasks[:1]}).hash()
    items = plan(config)
    looped = [item for item in items if item.task == CLOSED_LOOP]
    counts = Counter((item.model.name, item.strategy, item.k, item.seed) for item in looped)
    for arm in BASELINE_ARMS:  # once per sample, no examples
        assert counts[arm, "none", 0, 0] == 2
    # each model: k = 0 once, k = 3 per strategy and seed, as the recommendation task
    assert counts["sft", "none", 0, 0] == 2
    assert sum(n for (model, _, k, _), n in counts.items() if model == "sft" and k == 3) == 8
    recommendation = {i.key.partition("/")[2] for i in items if i.task != CLOSED_LOOP}
    asked = {i.key.partition("/")[2] for i in looped if not i.baseline}
    assert asked == recommendation  # the same model × strategy × k × seed × sample
    faulted = {s.id for s in open_release(DATASET, limit=2).samples}
    assert {item.sample.id for item in looped} == faulted
    assert all(item.loop is not None and item.loop.id == item.sample.id for item in looped)
    oracle = next(i for i in looped if i.model.name == "oracle")
    assert oracle.truth == tuple(oracle.loop.record["letters"])  # type: ignore[union-attr]
    assert len({item.key for item in items}) == len(items)


def test_a_dataset_without_simulation_records_is_a_configuration_error(tmp_path: Path) -> None:
    shutil.copytree(DATASET / "annotations", tmp_path / "annotations")
    shutil.copy(DATASET / "metadata.json", tmp_path / "metadata.json")
    shutil.copytree(DATASET / "images", tmp_path / "images")
    config = parse_config({"dataset": str(tmp_path), "tasks": ["closed_loop"], "limit": 1})
    with pytest.raises(BenchConfigError, match="closed_loop task needs a simulated release"):
        plan(config)
    recommendation = parse_config({"dataset": str(tmp_path), "tasks": ["recommendation"]})
    assert plan(recommendation)  # the same dataset is fine for the other tasks


def test_a_model_may_not_take_a_baseline_arms_name() -> None:
    with pytest.raises(BenchConfigError, match=r"\['oracle'\] name\(s\) a closed-loop baseline"):
        parse_config({"tasks": ["closed_loop"], "models": {"recommendation": [{"name": "oracle"}]}})
    with pytest.raises(BenchConfigError, match=r"no models for the closed_loop task"):
        parse_config({"tasks": ["closed_loop"], "models": {"recommendation": []}})
