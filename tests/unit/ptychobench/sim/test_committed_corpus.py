"""The committed training corpus and shifted set (data/corpus, data/shifted): whatever
part of them is finished never overlaps the benchmark's test split, by id or by image
content, and every finished unit is a sample the generator can account for."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, Task
from ptychobench.sim.generate import SimSettings, make_plan, replacement
from ptychobench.sim.objects import SHIFTED_SAMPLE_TYPES

DATA = Path(__file__).resolve().parents[4] / "data"
SETS = ("corpus", "shifted")


def _units(name: str) -> list[dict]:
    folder = DATA / name / "work" / "detect"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _pixels_hash(path: Path) -> str:
    with Image.open(path) as image:
        return hashlib.sha256(np.asarray(image.convert("L")).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def benchmark_test() -> tuple[set[str], set[str]]:
    dataset = read_release(DATA / "ptychobench-sim")
    samples = dataset.by_task(Task.DETECTION)["test"]
    return {s.id for s in samples}, {_pixels_hash(s.image) for s in samples if s.image}


@pytest.mark.parametrize("name", SETS)
def test_finished_units_never_overlap_the_benchmark_test_split(
    name: str, benchmark_test: tuple[set[str], set[str]]
) -> None:
    units = [u for u in _units(name) if not u.get("failed")]
    if not units:
        pytest.skip(f"no finished unit in data/{name} yet")
    ids, hashes = benchmark_test
    assert not {u["id"] for u in units} & ids
    phase = DATA / name / "work" / "phase"
    assert not {_pixels_hash(phase / u["image"]) for u in units} & hashes


@pytest.mark.parametrize("name", SETS)
def test_finished_units_are_planned_samples_with_labels(name: str) -> None:
    units = _units(name)
    if not units:
        pytest.skip(f"no finished unit in data/{name} yet")
    recorded = json.loads((DATA / name / "sim-settings.json").read_text())
    recorded.pop("generator", None)
    settings = SimSettings.model_validate(recorded)
    assert settings.variation == name
    plan = {item.id: item for item in make_plan(settings)}
    spares = {replacement(settings, item, i).id for i, item in enumerate(plan.values())}
    for unit in units:
        assert unit["id"] in plan or unit["id"] in spares
        if unit.get("failed"):
            continue
        assert set(unit["artifacts"]) <= {*ARTIFACT_LABELS, NO_ARTIFACTS}
        assert (DATA / name / "work" / "phase" / unit["image"]).is_file()
        assert len(unit["phase_range"]) == 2
        assert (unit["sample_type"] in SHIFTED_SAMPLE_TYPES) == (name == "shifted")
