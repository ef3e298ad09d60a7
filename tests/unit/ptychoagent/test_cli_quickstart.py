from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ptychoagent.cli import app


def test_quickstart_writes_a_report_that_score_reproduces(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["quickstart", "--out", str(out), "--n-resamples", "200"])
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
