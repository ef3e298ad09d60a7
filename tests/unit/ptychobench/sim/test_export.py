"""Experiments rebuilt from a simulator run's seeds (the committed PtychoBench-Sim)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ptychobench.experiment_io import read_experiment, write_experiment
from ptychobench.sim.export import SampleNotFoundError, export_experiment, sample_ids

ROOT = Path(__file__).resolve().parents[4]
DATASET = ROOT / "data" / "ptychobench-sim"
SAMPLE = "671e15ce"  # early_stop_halo: 9 epochs, fixed by K


def test_a_sample_is_rebuilt_as_it_was_diagnosed(tmp_path: Path) -> None:
    experiment = export_experiment(DATASET, SAMPLE)
    assert experiment.patterns.shape == (49, 64, 64)
    assert experiment.probe.shape == (1, 1, 64, 64)
    assert experiment.object_shape == (128, 128)
    assert experiment.config.num_epochs == 9
    assert experiment.parameters["iterations"] == "9"
    assert experiment.sample_type == "Liquid-metal particles"
    assert experiment.truth is not None
    assert experiment.truth.labels["letters"] == ["K"]
    assert experiment.truth.clean_config is not None
    assert experiment.truth.clean_config.num_epochs > 9
    again = export_experiment(DATASET, SAMPLE)
    np.testing.assert_array_equal(again.patterns, experiment.patterns)  # the same noise
    path = tmp_path / "e.h5"
    write_experiment(path, experiment)
    assert path.stat().st_size < 2_000_000
    back = read_experiment(path)
    np.testing.assert_array_equal(back.patterns, experiment.patterns)


def test_the_clean_setup_is_the_same_scene_set_up_well() -> None:
    fault = export_experiment(DATASET, SAMPLE)
    clean = export_experiment(DATASET, SAMPLE, setup="clean")
    assert fault.truth is not None
    assert clean.truth is not None
    np.testing.assert_array_equal(clean.truth.object, fault.truth.object)
    assert clean.config == fault.truth.clean_config
    assert clean.truth.labels["setup"] == "clean"


def test_a_changed_simulator_is_caught(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATASET / "sim-settings.json", run)
    lines = []
    for line in (DATASET / "samples.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["id"] == SAMPLE:
            record["parameters"]["iterations"] = "10"
        lines.append(json.dumps(record))
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="simulator has changed"):
        export_experiment(run, SAMPLE)


def test_unknown_samples_and_runs() -> None:
    with pytest.raises(SampleNotFoundError, match="no sample 'nope'"):
        export_experiment(DATASET, "nope")
    with pytest.raises(FileNotFoundError, match="not a simulator run"):
        export_experiment(ROOT / "docs", SAMPLE)
    assert SAMPLE in sample_ids(DATASET)


def test_the_cli_exports_one_file_or_a_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ptychoagent.cli import app

    runner = CliRunner()
    one = tmp_path / "one.h5"
    result = runner.invoke(app, ["sim", "export-experiment", str(DATASET), SAMPLE, "-o", str(one)])
    assert result.exit_code == 0, result.output
    assert "49 patterns 64x64, object 128x128, 9 epochs" in result.output
    assert read_experiment(one).config.num_epochs == 9
    folder = tmp_path / "clean"
    args = ["sim", "export-experiment", str(DATASET), SAMPLE, "-o", str(folder), "--setup", "clean"]
    assert runner.invoke(app, args).exit_code == 0
    assert (folder / f"{SAMPLE}-clean.h5").exists()
    for bad, message in (
        ([SAMPLE, "--setup", "dirty"], "--setup must be fault or clean"),
        (["nope"], "no sample 'nope'"),
        ([], "name sample ids or give --split"),
        (["--split", "test"], "TASK/SPLIT"),
    ):
        result = runner.invoke(app, ["sim", "export-experiment", str(DATASET), *bad, "-o", "x"])
        assert result.exit_code == 2
        assert message in result.output


def test_sim_without_out_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from ptychoagent.cli import app

    result = CliRunner().invoke(app, ["sim", "--n", "12"])
    assert result.exit_code == 2
    assert "Missing option '--out'" in result.output
