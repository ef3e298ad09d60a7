from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app


def test_quickstart_writes_a_report_that_score_reproduces(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["quickstart", "--out", str(out), "--n-resamples", "200", "--toy"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    cells = {(c["task"], c["strategy"], c["k"]): c for c in report["cells"]}
    assert len(cells) == 2 * 2 * 5
    assert all(0.0 <= c["micro_f1"] <= 1.0 for c in cells.values())
    assert (out / "dataset" / "annotations" / "artifact_detection_split" / "test.json").exists()

    scored = runner.invoke(
        app,
        ["score", str(out / "results.jsonl"), "--task", "recommendation", "--json"],
    )
    assert scored.exit_code == 0, scored.output
    assert "ssfs" in scored.output.lower()
    inspected = runner.invoke(app, ["data", "inspect", str(out / "dataset"), "--json"])
    assert inspected.exit_code == 0, inspected.output


SIM = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"


@pytest.mark.skipif(not (SIM / "annotations").is_dir(), reason="no committed dataset")
def test_quickstart_runs_on_the_committed_simulated_dataset_by_default(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--n-resamples", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"].startswith("PtychoBench-Sim")
    assert "detection 312 train / 79 test" in " ".join(result.output.split())


def test_quickstart_refuses_a_directory_that_is_not_a_release(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["quickstart", "--out", str(tmp_path / "run"), "--dataset", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "not a release directory" in result.output
