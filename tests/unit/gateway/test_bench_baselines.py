"""The baselines beside the models in a benchmark report: the best constant, the simple
rule, and the mark on cells that do not clear the constant."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from rich.console import Console

from gateway.bench.baselines import MARK, Baseline, read_dataset
from gateway.bench.records import ItemResult, RunRecord
from gateway.bench.report import Report, build_report, render_markdown, render_tables, write_report
from ptychobench.baselines import best_constant, recommendation_rule
from ptychobench.bootstrap import bootstrap, paired_bootstrap
from ptychobench.data import Dataset, Sample
from ptychobench.labels import ARTIFACT_LABELS, OPTION_LETTERS

N_RESAMPLES = 300
HALO, LINE, GRID = "Halo artifacts", "Line artifacts", "Grid artifacts"
PARAMETERS = "iterations: 500\nposition correction: off\nOPR modes: 0"


def _record() -> RunRecord:
    return RunRecord(
        run_id="run-b",
        name="baselines",
        config_hash="b0",
        config={"tasks": ["detection", "recommendation"]},
        git_revision=None,
        dataset="data/none",
        split="test",
        started_at="2025-01-01T00:00:00+00:00",
        finished_at=None,
        gateway_url="http://gateway.test",
    )


def _dataset() -> Dataset:
    """Training samples whose types vote Halo (Zeolite) and Grid (Integrated circuit);
    12 test samples per task."""
    train_det = [
        Sample(id="tr-0", sample_type="Zeolite", artifacts=(HALO,)),
        Sample(id="tr-1", sample_type="Zeolite", artifacts=(HALO, LINE)),
        Sample(id="tr-2", sample_type="Integrated circuit", artifacts=(GRID,)),
    ]
    kinds = ("Zeolite", "Integrated circuit")
    # Halo and Line on most items: the best constant is the pair {Halo, Line}
    truths = [(HALO, LINE)] * 6 + [(HALO,)] * 2 + [(LINE,)] * 2 + [(GRID,)] * 2
    test_det = [
        Sample(id=f"d{i:02d}", sample_type=kinds[i % 2], artifacts=truth)
        for i, truth in enumerate(truths)
    ]
    observed = ("Local distortion",), ("Phase ramp",), ("Line artifacts",)
    letters = ("G",), ("M",), ("T", "K")
    test_rec = [
        Sample(
            id=f"r{i:02d}",
            sample_type=kinds[i % 2],
            artifacts=observed[i % 3],
            options=letters[i % 3],
            parameters=PARAMETERS,
        )
        for i in range(12)
    ]
    return Dataset(
        detection={"train": tuple(train_det), "test": tuple(test_det)},
        recommendation={"train": (), "test": tuple(test_rec)},
    )


def _items(dataset: Dataset) -> list[ItemResult]:
    """Per task two models at k = 0: "oracle" answers the truth, "stuck" gives every
    item one wrong label."""
    out: list[ItemResult] = []
    for task, wrong in (("detection", ("Blurring",)), ("recommendation", ("W",))):
        for sample in dataset.samples(task, "test"):
            truth = sample.labels(task)
            for model, predicted in (("oracle", truth), ("stuck", wrong)):
                out.append(
                    ItemResult(
                        task=task,
                        model=model,
                        adapter=model,
                        strategy="none",
                        k=0,
                        seed=0,
                        sample_id=sample.id,
                        sample_type=sample.sample_type,
                        truth=truth,
                        predicted=predicted,
                    )
                )
    return out


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return _dataset()


@pytest.fixture(scope="module")
def report(dataset: Dataset) -> Report:
    return build_report(_items(dataset), _record(), n_resamples=N_RESAMPLES, dataset=dataset)


def _baseline(report: Report, task: str, name: str) -> Baseline:
    found = [b for b in report.baselines if (b["task"], b["name"]) == (task, name)]
    assert len(found) == 1, (task, name)
    return found[0]


def test_the_best_constant_is_chosen_and_bootstrapped_on_the_run_items(
    report: Report, dataset: Dataset
) -> None:
    samples = sorted(dataset.samples("detection", "test"), key=lambda s: s.id)
    truths = [s.artifacts for s in samples]
    constant = _baseline(report, "detection", "best constant")
    assert constant["answer"] == [HALO, LINE]
    assert constant["answer"] == list(best_constant(truths, ARTIFACT_LABELS).labels)
    assert constant["n_items"] == 12
    assert constant["split"] == "test"
    # the same bootstrap, resamples and seed as the model cells
    expected = bootstrap(
        truths, [(HALO, LINE)] * 12, "micro_f1", N_RESAMPLES, 0, vocab=ARTIFACT_LABELS
    )
    assert constant["micro_f1"] == pytest.approx(expected.point)
    assert (constant["ci_low"], constant["ci_high"]) == pytest.approx(
        (expected.ci_low, expected.ci_high)
    )
    assert "oracle" in str(constant["description"])


def test_the_rules_score_what_they_answer(report: Report, dataset: Dataset) -> None:
    # detection: Zeolite's training samples vote Halo (2/2) and Line (1/2); Integrated
    # circuit's vote Grid
    samples = sorted(dataset.samples("detection", "test"), key=lambda s: s.id)
    votes = {"Zeolite": (HALO, LINE), "Integrated circuit": (GRID,)}
    expected = bootstrap(
        [s.artifacts for s in samples],
        [votes[s.sample_type] for s in samples],
        "micro_f1",
        N_RESAMPLES,
        0,
        vocab=ARTIFACT_LABELS,
    )
    rule = _baseline(report, "detection", "rule")
    assert rule["micro_f1"] == pytest.approx(expected.point)
    assert rule["answer"] is None
    # recommendation: local distortion → G, phase ramp → M, lines → T
    samples = sorted(dataset.samples("recommendation", "test"), key=lambda s: s.id)
    answers = [recommendation_rule(s.artifacts, s.parameters) for s in samples]
    assert answers[:3] == [["G"], ["M"], ["T"]]
    expected = bootstrap(
        [s.options for s in samples], answers, "micro_f1", N_RESAMPLES, 0, vocab=OPTION_LETTERS
    )
    assert _baseline(report, "recommendation", "rule")["micro_f1"] == pytest.approx(expected.point)


def test_a_model_below_the_constant_is_marked_and_one_above_is_not(
    report: Report, dataset: Dataset
) -> None:
    for task in ("detection", "recommendation"):
        floor = _baseline(report, task, "best constant")["micro_f1"]
        good = report.cell(task, "oracle", "none", 0)
        bad = report.cell(task, "stuck", "none", 0)
        assert good is not None
        assert bad is not None
        assert good["clears_constant"] is True
        assert (good["ci_low"] or 0.0) > floor
        assert bad["clears_constant"] is False
        assert (bad["ci_low"] or 0.0) <= floor
        assert (bad["minus_constant"] or 0.0) < 0
    # the paired difference is the ptychobench paired bootstrap of the cell's items
    samples = sorted(dataset.samples("detection", "test"), key=lambda s: s.id)
    paired = paired_bootstrap(
        [s.artifacts for s in samples],
        [("Blurring",)] * 12,
        [(HALO, LINE)] * 12,
        "micro_f1",
        N_RESAMPLES,
        0,
        vocab=ARTIFACT_LABELS,
    )
    bad = report.cell("detection", "stuck", "none", 0)
    assert bad is not None
    assert bad["minus_constant"] == pytest.approx(paired.point_diff)
    assert bad["minus_constant_p"] == pytest.approx(paired.p_value)
    assert bad["minus_constant_ci_low"] == pytest.approx(paired.ci_low)


def _row(markdown: str, start: str, after: str) -> str:
    section = markdown[markdown.index(after) :]
    return next(line for line in section.splitlines() if line.startswith(start))


def test_markdown_shows_the_baseline_rows_and_the_marks(report: Report) -> None:
    markdown = render_markdown(report)
    for task in ("detection", "recommendation"):
        pooled = f"### Pooled micro-F1 [95% CI] ({task})"
        constant = _baseline(report, task, "best constant")
        row = _row(markdown, "| best constant (oracle) | baseline |", pooled)
        assert row.count(f"{constant['micro_f1']:.3f} [{constant['ci_low']:.3f}, ") == 1  # k=0
        assert "| simple rule | baseline |" in markdown[markdown.index(pooled) :]
        mean = f"### Micro-F1, mean ± std over seeds ({task})"
        assert _row(markdown, "| stuck |", mean).endswith(f" {MARK} |")
        assert MARK not in _row(markdown, "| oracle |", mean)
        assert f"### Baselines ({task}, split test)" in markdown
    assert "upper bound for any constant answer" in markdown
    assert "does not clear the best constant" in markdown


def test_a_best_cell_below_the_constant_is_not_called_best(dataset: Dataset) -> None:
    weak = [item for item in _items(dataset) if item.model == "stuck"]
    report = build_report(weak, _record(), n_resamples=N_RESAMPLES, dataset=dataset)
    assert report.best["detection"]["clears_constant"] is False
    markdown = render_markdown(report)
    assert "### Best cell" not in markdown
    assert f"### Highest-scoring cell: stuck no examples k=0 {MARK}" in markdown
    assert "no model of this task has shown that it works here" in markdown


def test_csv_files_carry_the_baselines_and_the_marks(report: Report, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path)
    baselines = list(csv.DictReader(io.StringIO(paths["baselines"].read_text())))
    assert [(r["task"], r["baseline"], r["k"]) for r in baselines] == [
        ("detection", "best constant", "all"),
        ("detection", "rule", "all"),
        ("recommendation", "best constant", "all"),
        ("recommendation", "rule", "all"),
    ]
    assert baselines[0]["answer"] == f"{HALO} {LINE}"
    cells = {
        (r["task"], r["model"], r["strategy"]): r
        for r in csv.DictReader(io.StringIO(paths["csv"].read_text()))
    }
    assert cells["detection", "oracle", "none"]["clears_constant"] == "True"
    assert cells["detection", "stuck", "none"]["clears_constant"] == "False"
    assert float(cells["detection", "stuck", "none"]["minus_constant"]) < 0


def test_console_tables_show_the_baselines_and_the_mark(report: Report) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    for table in render_tables(report):
        console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.count("best constant (oracle)") == 2
    assert text.count("simple rule") == 2
    stuck = [line for line in text.splitlines() if "stuck" in line]
    assert len(stuck) == 2
    assert all(MARK in line for line in stuck)
    assert all(MARK not in line for line in text.splitlines() if "oracle " in line)


def test_without_the_dataset_the_rule_is_missing_and_the_constant_is_not(
    dataset: Dataset,
) -> None:
    report = build_report(_items(dataset), _record(), n_resamples=N_RESAMPLES)
    assert [b["name"] for b in report.baselines] == ["best constant", "best constant"]
    assert "detection: simple rule not computed: no dataset was given to the report" in (
        report.missing
    )


def test_read_dataset_gives_none_for_what_it_cannot_read(tmp_path: Path) -> None:
    assert read_dataset(tmp_path / "nowhere") is None
    assert read_dataset("nowhere", root=tmp_path) is None
