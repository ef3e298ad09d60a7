"""The generator's plan, settings and resumable runs (a small real run is marked slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app
from ptychobench.captions import letters_from_advice
from ptychobench.data import read_release
from ptychobench.sim.faults import FAULTS, Scene, confirmed_labels
from ptychobench.sim.generate import (
    PAIRS,
    SimSettings,
    _claim,
    fix_gain,
    generate,
    make_plan,
    replacement,
)
from ptychobench.sim.instruments import INSTRUMENTS
from ptychobench.sim.objects import SAMPLE_TYPES
from ptychobench.sim.plan import PlanItem, sessions

runner = CliRunner()


def test_the_plan_is_deterministic_balanced_and_applicable() -> None:
    settings = SimSettings(n=200, seed=4)
    plan = make_plan(settings)
    assert plan == make_plan(settings)
    assert plan != make_plan(SimSettings(n=200, seed=5))
    assert len({item.id for item in plan}) == 200
    counts = Counter(item.sample_type for item in plan)
    assert set(counts) == set(SAMPLE_TYPES)
    assert max(counts.values()) - min(counts.values()) <= 1
    for item in plan:
        scene = Scene(item.sample_type, INSTRUMENTS[item.instrument], 0, False)
        assert all(FAULTS[name].applies_to(scene) for name in item.faults)
        if len(item.faults) == 2:
            assert item.faults in PAIRS
    clean = sum(1 for item in plan if not item.faults)
    assert 5 <= clean <= 40  # clean_share 0.1
    assert any(len(item.faults) == 2 for item in plan)


def _same_type_agreement(plan: list[PlanItem]) -> float:
    """Share of pairs of samples of one type that have the same faults."""
    pairs = [
        a.faults == b.faults
        for i, a in enumerate(plan)
        for b in plan[i + 1 :]
        if a.sample_type == b.sample_type
    ]
    return sum(pairs) / len(pairs)


def test_sessions_give_a_sample_type_one_instrument_and_a_standing_fault() -> None:
    independent = SimSettings(n=200, seed=4)
    settings = independent.model_copy(update={"standing_share": 0.8, "standing_rate": 0.75})
    plan, session = make_plan(settings), sessions(settings)
    assert sessions(independent) == {}
    assert set(session) == set(SAMPLE_TYPES)
    standing = {t: s.fault for t, s in session.items() if s.fault is not None}
    assert 0.5 * len(SAMPLE_TYPES) <= len(standing) < len(SAMPLE_TYPES)
    for item in plan:
        assert item.instrument == session[item.sample_type].instrument
        scene = Scene(item.sample_type, INSTRUMENTS[item.instrument], 0, False)
        assert all(FAULTS[name].applies_to(scene) for name in item.faults)
    showing = [
        item.faults == (standing[item.sample_type],)
        for item in plan
        if item.sample_type in standing
    ]
    assert 0.65 <= sum(showing) / len(showing) <= 0.95  # standing_rate 0.75, plus chance
    # a sample type now tells its faults: same-type pairs share them far more often
    assert _same_type_agreement(plan) > 2 * _same_type_agreement(make_plan(independent))
    failed = plan[3]
    again = replacement(settings, failed, 0)
    assert again.instrument == session[failed.sample_type].instrument


def test_a_fault_subset_is_respected() -> None:
    plan = make_plan(SimSettings(n=30, faults=("too_few_iterations",), clean_share=0.0))
    assert {item.faults for item in plan} == {("too_few_iterations",)}


def test_replacements_keep_the_sample_type_and_are_deterministic() -> None:
    settings = SimSettings(n=20)
    failed = make_plan(settings)[3]
    first = replacement(settings, failed, 0)
    assert first == replacement(settings, failed, 0)
    assert first.sample_type == failed.sample_type
    assert first.index == 20
    assert first.id not in {item.id for item in make_plan(settings)}
    assert replacement(settings, failed, 1).id != first.id


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        SimSettings(faults=("gremlins",)).check()
    with pytest.raises(pydantic.ValidationError):
        SimSettings(n=3)
    with pytest.raises(ValueError, match="no faults"):
        SimSettings(faults=(), clean_share=0.5).check()


def test_a_directory_made_with_other_settings_is_not_resumed(tmp_path: Path) -> None:
    _claim(tmp_path, SimSettings(n=20, seed=1))
    _claim(tmp_path, SimSettings(n=20, seed=1))  # the same settings resume
    with pytest.raises(ValueError, match="other settings \\(seed\\)"):
        _claim(tmp_path, SimSettings(n=20, seed=2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "5"], "n"),
        (["--workers", "0"], "workers"),
        (["--faults", "gremlins"], "unknown faults"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_cli_says_what_is_wrong(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sim", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_fix_gain_is_the_share_of_the_gap_closed() -> None:
    assert fix_gain(0.2, 0.9, 1.0) == pytest.approx(0.875)  # a metric that must rise
    assert fix_gain(3.0, 1.5, 1.0) == pytest.approx(0.75)  # a metric that must fall
    assert fix_gain(0.2, 0.1, 1.0) < 0
    assert fix_gain(1.0, 1.0, 1.0) == 0.0


# ------------------------------------------------------------------ a small real run

needs_ptychi = pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed")
SMALL = ["--n", "12", "--seed", "1", "--faults", "too_few_iterations,over_regularised"]


def _units(out: Path) -> dict[str, bytes]:
    folder = out / "work" / "detect"
    return {p.name: p.read_bytes() for p in folder.glob("*.json")} if folder.exists() else {}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run killed after a few samples, then resumed to the end in-process."""
    out = tmp_path_factory.mktemp("sim")
    command = [sys.executable, "-c", "from ptychoagent.cli import main; main()", "sim"]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--workers", "1", *SMALL],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(_units(out)) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = _units(out)
    assert 3 <= len(before) < 12, "the run was not stopped part-way"
    totals: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        totals.setdefault(phase, total)

    settings = SimSettings(n=12, seed=1, faults=("too_few_iterations", "over_regularised"))
    dataset = generate(settings, out, workers=1, progress=progress)
    return {"out": out, "before": before, "totals": totals, "dataset": dataset}


@pytest.mark.slow
@needs_ptychi
def test_a_killed_run_resumes_without_redoing_finished_samples(small_run: dict[str, Any]) -> None:
    out, before = small_run["out"], small_run["before"]
    after = _units(out)
    assert {name: after[name] for name in before} == before  # kept, byte for byte
    assert small_run["totals"]["reconstruct"] == 12 - len(before)
    assert not list(out.rglob("*.tmp*"))  # no half-written files survive


@pytest.mark.slow
@needs_ptychi
def test_the_small_run_is_a_release_with_confirmed_labels(small_run: dict[str, Any]) -> None:
    out, dataset = small_run["out"], small_run["dataset"]
    written = read_release(out)
    assert written.detection == dataset.detection
    assert written.recommendation == dataset.recommendation
    detection = [s for split in dataset.detection.values() for s in split]
    assert len(detection) == 12
    assert len(dataset.detection["test"]) == 3  # ceil(12 · 79/391)
    for split in dataset.recommendation.values():
        for sample in split:
            assert letters_from_advice(sample.caption_param) == sample.options
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {r["id"] for r in records} == {s.id for s in detection}
    for record in records:
        metrics = record["metrics"]
        for label in record["artifacts"]:
            if label == "No obvious artifacts":
                assert not record["faults"]
                continue
            assert any(
                label in confirmed_labels(FAULTS[name], metrics["fault"], metrics["clean"])
                for name in record["faults"]
            ), (record["id"], label)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["generator"] == "ptychobench-sim/1"
    assert metadata["counts"]["samples"] == 12
    assert sum(metadata["counts"]["sample_types"].values()) == 12


@pytest.mark.slow
@needs_ptychi
def test_running_again_redoes_nothing_and_writes_the_same_files(small_run: dict[str, Any]) -> None:
    out = small_run["out"]
    snapshot = {p: p.read_bytes() for p in (out / "annotations").rglob("*.json")}
    totals: dict[str, int] = {}
    settings = SimSettings(n=12, seed=1, faults=("too_few_iterations", "over_regularised"))
    generate(settings, out, workers=1, progress=lambda p, d, t: totals.setdefault(p, t))
    assert totals.get("reconstruct", 0) == 0
    assert {p: p.read_bytes() for p in (out / "annotations").rglob("*.json")} == snapshot
