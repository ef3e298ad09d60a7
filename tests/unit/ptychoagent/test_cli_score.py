from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from ptychoagent.cli.score import TaskName, score
from ptychobench.labels import ARTIFACT_LABELS, Task

HALO, LINE, NULL = "Halo artifacts", "Line artifacts", "No obvious artifacts"

runner = CliRunner()


def score_app() -> typer.Typer:
    """The command alone, independent of the other command modules."""
    app = typer.Typer()
    app.command()(score)
    return app


def invoke(*args: str) -> Any:
    return runner.invoke(score_app(), list(args), env={"COLUMNS": "200"})


PUBLISHED = {
    "config": {
        "model_path": "meta-llama/Llama-3.2-90B-Vision-Instruct",
        "selection_mode": "similar",
    },
    "similar": {
        "7-shot": {
            "raw_predictions": [
                "<answer>[Halo artifacts, Line artifacts]</answer>",
                "<answer>[Halo artifacts]</answer>",
                "<answer>[No obvious artifacts]</answer>",
                "<answer>[Line artifacts, Sparkles]</answer>",
            ],
            "ground_truths": [
                "<answer>[Halo artifacts]</answer>",
                "<answer>[Halo artifacts, Line artifacts]</answer>",
                "<answer>[No obvious artifacts]</answer>",
                "<answer>[Line artifacts]</answer>",
            ],
        }
    },
}


def matrix(rows: list[list[str]], labels: list[str]) -> np.ndarray:
    return np.array([[label in row for label in labels] for row in rows], dtype=bool)


def test_published_file_json_output_matches_sklearn(tmp_path: Path) -> None:
    path = tmp_path / "vlm_artifact_det.json"
    path.write_text(json.dumps(PUBLISHED), encoding="utf-8")
    result = invoke(str(path), "--json", "--n-resamples", "300", "--seed", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["n_resamples"], data["seed"]) == (300, 1)
    (run,) = data["runs"]
    assert (run["task"], run["strategy"], run["k"], run["n_items"]) == ("detection", "ssfs", 7, 4)
    assert run["model"] == "meta-llama/Llama-3.2-90B-Vision-Instruct"
    truths = [[HALO], [HALO, LINE], [NULL], [LINE]]
    preds = [[HALO, LINE], [HALO], [NULL], [LINE]]  # "Sparkles" does not parse
    t, p = matrix(truths, list(ARTIFACT_LABELS)), matrix(preds, list(ARTIFACT_LABELS))
    assert run["ours"]["micro"]["f1"] == pytest.approx(
        f1_score(t, p, average="micro", zero_division=0)
    )
    assert run["ours"]["macro"]["f1"] == pytest.approx(
        f1_score(t, p, average="macro", zero_division=0)
    )
    assert run["parse_failures"] == 1
    # parity: null label dropped, "Sparkles" a label of its own
    labels = [HALO, LINE, "Sparkles"]
    pt = matrix([[HALO], [HALO, LINE], [], [LINE]], labels)
    pp = matrix([[HALO, LINE], [HALO], [], [LINE, "Sparkles"]], labels)
    assert run["parity"]["micro"]["f1"] == pytest.approx(
        f1_score(pt, pp, average="micro", zero_division=0)
    )
    assert run["parity"]["labels"] == labels
    ci = run["ours"]["micro_f1_bootstrap"]
    assert ci["n_resamples"] == 300
    assert ci["ci_low"] <= ci["point"] <= ci["ci_high"]


def jsonl_rows() -> list[dict[str, Any]]:
    rows = []
    for i, (truth, answer) in enumerate(
        [
            (["G", "K"], "<answer>G, K</answer>"),
            (["K"], "<answer>K, Z</answer>"),
            (["L"], "no answer"),
        ]
    ):
        for strategy in ("ssfs", "rfs"):
            rows.append(
                {
                    "task": "recommendation",
                    "model": "llama-3.1-8b",
                    "strategy": strategy,
                    "k": 5,
                    "sample_type": "Siemens star",
                    "id": str(i),
                    "truth": truth,
                    "raw_answer": answer,
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_json_output(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "results.jsonl", jsonl_rows())
    result = invoke(str(path), "--json", "--n-resamples", "100")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["strategy"], r["k"]) for r in runs] == [("rfs", 5), ("ssfs", 5)]
    letters = ["G", "K", "L"]
    t = matrix([["G", "K"], ["K"], ["L"]], letters)
    p = matrix([["G", "K"], ["K"], []], letters)
    for run in runs:
        assert run["ours"]["micro"]["f1"] == pytest.approx(
            f1_score(t, p, average="micro", zero_division=0)
        )
        assert run["parse_failures"] == 2  # "Z" is not an option; "no answer" has no tags
        assert run["ours"]["per_sample_type"]["Siemens star"]["n_items"] == 3


def test_table_output_lists_each_run(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "results.jsonl", jsonl_rows())
    result = invoke(str(path), "--n-resamples", "50")
    assert result.exit_code == 0, result.output
    assert "recommendation · llama-3.1-8b" in result.stdout
    assert "SSFS" in result.stdout
    assert "RFS" in result.stdout
    assert "failures" in result.stdout
    assert "0.857" in result.stdout  # micro-F1 = 2*3 / (2*3 + 0 + 1)
    ours = json.loads(invoke(str(path), "--json", "--n-resamples", "50").stdout)["runs"][0]["ours"]
    ci = ours["micro_f1_bootstrap"]
    assert f"[{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]" in result.stdout


def test_task_option_filters_runs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "results.jsonl", jsonl_rows())
    result = invoke(str(path), "--json", "--task", "detection")
    assert result.exit_code == 2
    assert "no detection results" in result.stderr


def test_malformed_file_exits_2_with_one_line(tmp_path: Path) -> None:
    rows = jsonl_rows()
    del rows[1]["truth"]
    path = write_jsonl(tmp_path / "results.jsonl", rows)
    result = invoke(str(path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {path}:2: field 'truth': missing"
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file"


def test_broken_published_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"similar": {"1-shot": {"raw_predictions": ["a"]}}}), encoding="utf-8"
    )
    result = invoke(str(path))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ground_truths" in result.stderr


def test_task_choices_mirror_the_library() -> None:
    assert [t.value for t in TaskName] == [t.value for t in Task]


def test_score_through_the_main_app(tmp_path: Path) -> None:
    from ptychoagent.cli import app

    path = write_jsonl(tmp_path / "results.jsonl", jsonl_rows())
    result = runner.invoke(app, ["score", str(path), "--json", "--n-resamples", "20"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["runs"]) == 2


def test_importing_the_command_loads_neither_numpy_nor_ptychobench() -> None:
    code = (
        "import sys, importlib.util, pathlib\n"
        "spec = importlib.util.spec_from_file_location('score_cli', 'ptychoagent/cli/score.py')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'ptychobench')))\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
