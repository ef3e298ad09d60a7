"""The closed-loop task of a benchmark configuration: which items it plans, and the
datasets and model names it refuses."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def test_an_items_outcome_is_stored_and_0009_goes_down_and_up(database_url: str) -> None:
    from gateway.bench.store import RunStore
    from services.common.database import make_engine

    engine = make_engine(database_url)
    try:
        _round_trip_and_migrate(engine, RunStore(engine))
    finally:
        engine.dispose()


def _round_trip_and_migrate(engine: Any, runs: Any) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import text

    from gateway.bench.records import ItemResult
    from gateway.bench.store import Base
    from services.common.database import _alembic_config, migrate

    runs.create_schema()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "bench_" in repr(d)] == []
    config = parse_config({"dataset": str(DATASET), "tasks": ["closed_loop"], "limit": 1})
    run, _ = runs.open(config, 1, None, "test")
    outcome = {"applied": ["N"], "gain": 0.37, "fixed": True, "skipped": {"L": "no changes"}}
    result = ItemResult(
        "closed_loop", "oracle", "baseline", "none", 0, 0, "f82042dd", "x", ("N",), ("N",)
    )
    runs.save(run.id, "closed_loop/oracle", replace(result, outcome=outcome))
    runs.save(run.id, "recommendation/sft", replace(result, task="recommendation", model="sft"))
    stored = {item.model: item for item in runs.items(run.id)}
    assert stored["oracle"].outcome == outcome
    assert stored["sft"].outcome is None
    alembic = _alembic_config()
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.downgrade(alembic, "0008")
    with engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM bench_items")).keys())
    assert "outcome" not in columns
    migrate(engine)
    assert stored["oracle"].sample_id in {item.sample_id for item in runs.items(run.id)}
    assert all(item.outcome is None for item in runs.items(run.id))  # dropped with 0009
