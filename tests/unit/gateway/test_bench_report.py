"""The benchmark report against numbers computed here by hand (or with
`ptychobench.metrics.score` on the items a cell should hold)."""

from __future__ import annotations

import io
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from gateway.bench.records import ItemResult, RunRecord
from gateway.bench.report import (
    FILES,
    Cell,
    Report,
    build_report,
    render_tables,
    write_report,
)
from ptychobench.labels import ARTIFACT_LABELS, OPTION_LETTERS, vocabulary
from ptychobench.metrics import score

N_RESAMPLES = 200
SAMPLE_TYPES = ("Battery cathode", "Integrated circuit", "Zeolite")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(**config: Any) -> RunRecord:
    return RunRecord(
        run_id="run-1",
        name="unit",
        config_hash="c0ffee",
        config={"tasks": ["detection", "recommendation"], **config},
        git_revision="deadbeef",
        dataset="data/ptychobench-sim",
        split="test",
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T01:00:00+00:00",
        gateway_url="http://gateway.test",
    )


def _noisy(
    truth: Sequence[str], vocab: Sequence[str], quality: float, rng: random.Random
) -> tuple[str, ...]:
    kept = [label for label in truth if rng.random() < quality]
    if rng.random() > quality:
        kept.append(rng.choice([label for label in vocab if label not in truth]))
    return tuple(label for label in vocab if label in kept)


def _items() -> list[ItemResult]:
    """Two models (base, sft), k = 0 without examples and SSFS/RFS at k = 1, 3, seeds 0
    and 1, 10 samples per task; two failed requests and three parse failures."""
    rng = random.Random(20250101)
    out: list[ItemResult] = []
    for task, vocab in (("detection", ARTIFACT_LABELS), ("recommendation", OPTION_LETTERS)):
        samples = [
            (
                f"{task[:3]}-{i:02d}",
                SAMPLE_TYPES[i % 3],
                tuple(label for label in vocab if label in rng.sample(vocab, 1 + i % 3)),
            )
            for i in range(10)
        ]
        for model, quality in (("base", 0.45), ("sft", 0.75)):
            configs = [("none", 0)] + [(s, k) for s in ("ssfs", "rfs") for k in (1, 3)]
            for strategy, k in configs:
                for seed in (0, 1):
                    for sample_id, sample_type, truth in samples:
                        boost = 0.05 * k if strategy == "ssfs" else 0.0
                        out.append(
                            ItemResult(
                                task=task,
                                model=model,
                                adapter=f"{model}-adapter",
                                strategy=strategy,
                                k=k,
                                seed=seed,
                                sample_id=sample_id,
                                sample_type=sample_type,
                                truth=truth,
                                predicted=_noisy(truth, vocab, min(0.95, quality + boost), rng),
                                latency_s=0.5 + 0.01 * k,
                            )
                        )
    for index, item in enumerate(out):
        key = (item.task, item.model, item.strategy, item.k, item.seed)
        if key == ("detection", "sft", "ssfs", 3, 1) and item.sample_id in ("det-02", "det-05"):
            out[index] = replace(item, predicted=(), error="timeout after 3 retries")
        if key == ("detection", "base", "rfs", 1, 0) and item.sample_id in (
            "det-01",
            "det-04",
            "det-07",
        ):
            out[index] = replace(item, unmapped=("some blurry thing",))
    return out


def _members(
    items: Sequence[ItemResult], task: str, model: str, strategy: str, k: int
) -> list[ItemResult]:
    """What a cell should hold: its own items and the shared k = 0 ones."""
    return [
        i
        for i in items
        if (i.task, i.model, i.k) == (task, model, k) and i.strategy in (strategy, "none")
    ]


def _micro(items: Sequence[ItemResult], task: str) -> float:
    vocab = vocabulary(task)
    return score([i.truth for i in items], [i.predicted for i in items], vocab).micro.f1


def _cell(report: Report, task: str, model: str, strategy: str, k: int) -> Cell:
    cell = report.cell(task, model, strategy, k)
    assert cell is not None, (task, model, strategy, k)
    return cell


@pytest.fixture(scope="module")
def items() -> list[ItemResult]:
    return _items()


@pytest.fixture(scope="module")
def report(items: list[ItemResult]) -> Report:
    return build_report(items, _record(), n_resamples=N_RESAMPLES, seed=0)


def test_cells_cover_every_model_strategy_and_k(report: Report) -> None:
    keys = {(c["task"], c["model"], c["strategy"], c["k"]) for c in report.cells}
    expected = {
        (task, model, strategy, k)
        for task in ("detection", "recommendation")
        for model in ("base", "sft")
        for strategy in ("ssfs", "rfs")
        for k in (0, 1, 3)
    }
    assert keys == expected
    assert report.tasks == ["detection", "recommendation"]


def test_mean_and_std_over_seeds_of_one_cell(report: Report, items: list[ItemResult]) -> None:
    members = _members(items, "detection", "sft", "ssfs", 3)
    per_seed = [
        _micro([i for i in members if i.seed == seed and i.error is None], "detection")
        for seed in (0, 1)
    ]
    cell = _cell(report, "detection", "sft", "ssfs", 3)
    assert [entry["micro_f1"] for entry in cell["per_seed"]] == pytest.approx(per_seed)
    assert cell["mean_micro_f1"] == pytest.approx((per_seed[0] + per_seed[1]) / 2)
    # population standard deviation, as the paper (NumPy's default)
    assert cell["std_micro_f1"] == pytest.approx(statistics.pstdev(per_seed))
    assert cell["std_micro_f1"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)
    assert cell["n_seeds"] == 2
    assert cell["seeds"] == [0, 1]
    pooled = _micro([i for i in members if i.error is None], "detection")
    assert cell["micro_f1"] == pytest.approx(pooled)
    assert cell["ci_low"] is not None
    assert cell["ci_high"] is not None
    assert cell["ci_low"] <= pooled <= cell["ci_high"]


def test_k0_answers_fill_the_k0_column_of_every_strategy(
    report: Report, items: list[ItemResult]
) -> None:
    for task in ("detection", "recommendation"):
        for model in ("base", "sft"):
            ssfs = _cell(report, task, model, "ssfs", 0)
            rfs = _cell(report, task, model, "rfs", 0)
            assert ssfs["sources"] == rfs["sources"] == ["none"]
            assert ssfs["n_items"] == rfs["n_items"] == 20
            zero = [i for i in items if (i.task, i.model, i.k) == (task, model, 0)]
            assert ssfs["mean_micro_f1"] == rfs["mean_micro_f1"]
            assert ssfs["micro_f1"] == pytest.approx(_micro(zero, task))
            assert report.cell(task, model, "none", 0) is None


def test_a_model_with_only_k0_answers_is_reported_under_none(items: list[ItemResult]) -> None:
    classifier = [
        replace(i, model="classifier", adapter="dinov3")
        for i in items
        if (i.task, i.model, i.k) == ("detection", "base", 0)
    ]
    report = build_report(items + classifier, _record(), n_resamples=N_RESAMPLES)
    cell = _cell(report, "detection", "classifier", "none", 0)
    assert cell["n_items"] == 20
    assert cell["adapters"] == ["dinov3"]
    assert report.cell("detection", "classifier", "ssfs", 0) is None
    assert report.cell("detection", "classifier", "rfs", 0) is None
    base_zero = _cell(report, "detection", "base", "ssfs", 0)
    assert cell["mean_micro_f1"] == base_zero["mean_micro_f1"]


def test_errors_are_excluded_from_scores_but_counted(
    report: Report, items: list[ItemResult]
) -> None:
    cell = _cell(report, "detection", "sft", "ssfs", 3)
    assert cell["n_items"] == 20
    assert cell["errors"] == 2
    assert cell["n_scored"] == 18
    assert cell["per_seed"][1]["n_scored"] == 8
    members = _members(items, "detection", "sft", "ssfs", 3)
    with_errors_as_empty = _micro(members, "detection")
    assert cell["micro_f1"] != pytest.approx(with_errors_as_empty)
    totals = {(t["task"], t["model"]): t for t in report.totals}
    assert totals["detection", "sft"]["errors"] == 2
    assert totals["detection", "sft"]["error_messages"] == [
        {"message": "timeout after 3 retries", "count": 2}
    ]
    assert totals["detection", "base"]["errors"] == 0
    # the same cell under RFS has no failures
    assert _cell(report, "detection", "sft", "rfs", 3)["errors"] == 0


def test_parse_failures_are_counted(report: Report) -> None:
    assert _cell(report, "detection", "base", "rfs", 1)["parse_failures"] == 3
    assert _cell(report, "detection", "base", "ssfs", 1)["parse_failures"] == 0
    totals = {(t["task"], t["model"]): t for t in report.totals}
    assert totals["detection", "base"]["parse_failures"] == 3
    assert totals["recommendation", "base"]["parse_failures"] == 0


def test_best_cell_is_chosen_by_mean_over_seeds_not_by_pooled_f1() -> None:
    halo, line, grid, blur, low = (
        "Halo artifacts",
        "Line artifacts",
        "Grid artifacts",
        "Blurring",
        "Low contrast",
    )
    truths = {"s1": (halo,), "s2": (grid, line, low, blur)}
    answers = {
        # seed 0 perfect, seed 1 all wrong: mean 0.5, pooled low (many false positives)
        ("x", 0): {"s1": (halo,), "s2": (grid, line, low, blur)},
        ("x", 1): {"s1": tuple(label for label in ARTIFACT_LABELS if label != halo), "s2": ()},
        # steady: mean = pooled = 4/9
        ("y", 0): {"s1": ("Phase ramp",), "s2": (grid, line, "Noisy artifacts")},
        ("y", 1): {"s1": ("Phase ramp",), "s2": (grid, line, "Noisy artifacts")},
    }
    items = [
        ItemResult(
            task="detection",
            model=model,
            adapter=model,
            strategy="ssfs",
            k=1,
            seed=seed,
            sample_id=sample,
            sample_type="Zeolite",
            truth=truths[sample],
            predicted=tuple(label for label in ARTIFACT_LABELS if label in predicted),
        )
        for (model, seed), by_sample in answers.items()
        for sample, predicted in by_sample.items()
    ]

    def pooled(model: str) -> float:
        return _micro([i for i in items if i.model == model], "detection")

    def mean(model: str) -> float:
        return float(
            np.mean(
                [
                    _micro([i for i in items if (i.model, i.seed) == (model, s)], "detection")
                    for s in (0, 1)
                ]
            )
        )

    assert mean("x") == pytest.approx(0.5)
    assert mean("y") == pytest.approx(4 / 9)
    assert pooled("x") == pytest.approx(10 / 26)
    assert pooled("x") < pooled("y")

    report = build_report(items, _record(tasks=["detection"]), n_resamples=N_RESAMPLES)
    best = report.best["detection"]
    assert (best["model"], best["strategy"], best["k"]) == ("x", "ssfs", 1)
    assert best["mean_micro_f1"] == pytest.approx(0.5)
    assert best["std_micro_f1"] == pytest.approx(0.5)
    per_class = {c["label"]: c for c in best["per_class"]}
    assert [c["label"] for c in best["per_class"]] == list(ARTIFACT_LABELS)
    # Halo: seed 0 true positive, seed 1 false negative
    assert per_class[halo]["f1"] == pytest.approx(2 / 3)
    assert per_class[halo]["support"] == 2
    # Phase ramp: one false positive (x, seed 1 on s1), no truth
    assert per_class["Phase ramp"]["f1"] == 0.0
    assert per_class["Phase ramp"]["precision"] == 0.0
    assert per_class["Phase ramp"]["support"] == 0


def test_best_cells_of_the_synthetic_run(report: Report) -> None:
    for task in ("detection", "recommendation"):
        best = report.best[task]
        means = [c["mean_micro_f1"] for c in report.task_cells(task)]
        assert best["mean_micro_f1"] == max(m for m in means if m is not None)
        assert len(best["per_class"]) == len(vocabulary(task))
        assert [t["sample_type"] for t in best["per_sample_type"]] == list(SAMPLE_TYPES)


def test_per_sample_type_scores_of_the_best_recommendation_cell(
    report: Report, items: list[ItemResult]
) -> None:
    best = report.best["recommendation"]
    members = [
        i
        for i in _members(items, "recommendation", best["model"], best["strategy"], best["k"])
        if i.error is None
    ]
    for row in best["per_sample_type"]:
        of_type = [i for i in members if i.sample_type == row["sample_type"]]
        tp = sum(len(set(i.truth) & set(i.predicted)) for i in of_type)
        fp = sum(len(set(i.predicted) - set(i.truth)) for i in of_type)
        fn = sum(len(set(i.truth) - set(i.predicted)) for i in of_type)
        assert row["n_items"] == len(of_type)
        assert row["support"] == tp + fn
        assert row["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert row["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
        assert row["recall"] == pytest.approx(tp / (tp + fn))


def test_paired_comparison_sft_minus_base(report: Report, items: list[ItemResult]) -> None:
    found = [
        c
        for c in report.comparisons
        if (c["kind"], c["task"], c["a_strategy"], c["k"]) == ("models", "detection", "ssfs", 3)
    ]
    assert len(found) == 1
    comparison = found[0]
    assert (comparison["a_model"], comparison["b_model"]) == ("sft", "base")
    sft = {(i.sample_id, i.seed): i for i in _members(items, "detection", "sft", "ssfs", 3)}
    base = {(i.sample_id, i.seed): i for i in _members(items, "detection", "base", "ssfs", 3)}
    keys = sorted(key for key in sft if sft[key].error is None)
    assert comparison["n_items"] == len(keys) == 18
    assert comparison["n_unpaired"] == 4  # two failed sft items and their base partners
    expected = _micro([sft[k] for k in keys], "detection") - _micro(
        [base[k] for k in keys], "detection"
    )
    assert comparison["diff"] == pytest.approx(expected)
    assert comparison["ci_low"] <= comparison["ci_high"]
    assert 0.0 < comparison["p_value"] <= 1.0

    # k = 0 is compared once, under "none"; SSFS vs RFS at every k > 0 of each model
    models = [
        (c["task"], c["a_strategy"], c["k"]) for c in report.comparisons if c["kind"] == "models"
    ]
    assert sorted(models) == sorted(
        [(t, "none", 0) for t in ("detection", "recommendation")]
        + [
            (t, s, k)
            for t in ("detection", "recommendation")
            for s in ("ssfs", "rfs")
            for k in (1, 3)
        ]
    )
    strategies = [
        (c["task"], c["a_model"], c["a_strategy"], c["b_strategy"], c["k"])
        for c in report.comparisons
        if c["kind"] == "strategies"
    ]
    assert sorted(strategies) == sorted(
        (t, m, "ssfs", "rfs", k)
        for t in ("detection", "recommendation")
        for m in ("base", "sft")
        for k in (1, 3)
    )


def test_comparisons_come_from_the_configuration(items: list[ItemResult]) -> None:
    default = build_report(items, _record(), n_resamples=N_RESAMPLES)
    swapped = build_report(items, _record(comparisons=[["base", "sft"]]), n_resamples=N_RESAMPLES)
    none = build_report(items, _record(comparisons=[]), n_resamples=N_RESAMPLES)

    def model_diffs(report: Report) -> dict[tuple[str, str, int], float]:
        return {
            (c["task"], c["a_strategy"], c["k"]): c["diff"]
            for c in report.comparisons
            if c["kind"] == "models"
        }

    assert all(c["a_model"] == "base" for c in swapped.comparisons if c["kind"] == "models")
    assert model_diffs(swapped) == pytest.approx({k: -v for k, v in model_diffs(default).items()})
    assert model_diffs(none) == {}
    assert none.settings["comparisons"] == []


def test_all_four_files_are_written_and_deterministic(
    tmp_path: Path, report: Report, items: list[ItemResult]
) -> None:
    paths = write_report(report, tmp_path / "a")
    assert set(paths) == set(FILES)
    assert {p.name for p in paths.values()} == set(FILES.values())
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(FILES.values())
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)
    first = {key: paths[key].read_bytes() for key in ("json", "csv", "md")}
    assert json.loads(first["json"]) == json.loads(report.to_json())

    write_report(report, tmp_path / "a")
    assert paths["json"].read_bytes() == first["json"]

    again = build_report(list(reversed(items)), _record(), n_resamples=N_RESAMPLES, seed=0)
    second = write_report(again, tmp_path / "b")
    for key in ("json", "csv", "md"):
        assert second[key].read_bytes() == first[key], key

    rows = first["csv"].decode().splitlines()
    assert len(rows) == 1 + len(report.cells)
    assert rows[0].startswith("task,model,strategy,k,")
    markdown = first["md"].decode()
    cell = _cell(report, "detection", "sft", "ssfs", 3)
    assert f"{cell['mean_micro_f1']:.3f} ± {cell['std_micro_f1']:.3f}" in markdown
    assert "timeout after 3 retries" in markdown
    assert "run-1" in markdown


def test_console_tables_show_mean_and_std(report: Report) -> None:
    tables = render_tables(report)
    assert [t.title for t in tables] == [
        "detection: micro-F1, mean ± std over seeds",
        "recommendation: micro-F1, mean ± std over seeds",
    ]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    for table in tables:
        console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    cell = _cell(report, "recommendation", "base", "rfs", 1)
    assert f"{cell['mean_micro_f1']:.3f} ± {cell['std_micro_f1']:.3f}" in text


def test_empty_input_reports_what_is_missing(tmp_path: Path) -> None:
    report = build_report([], _record(), n_resamples=N_RESAMPLES)
    assert report.cells == []
    assert report.best == {}
    assert report.comparisons == []
    assert any("no items" in note for note in report.missing)
    assert render_tables(report) == []
    paths = write_report(report, tmp_path)
    assert paths["png"].read_bytes().startswith(PNG_SIGNATURE)
    assert "no items" in paths["md"].read_text()


def test_a_task_without_scored_items_does_not_crash(
    tmp_path: Path, items: list[ItemResult]
) -> None:
    failed = [
        replace(i, predicted=(), error="gateway unavailable") if i.task == "recommendation" else i
        for i in items
    ]
    report = build_report(failed, _record(), n_resamples=N_RESAMPLES)
    assert set(report.best) == {"detection"}
    assert "recommendation: no scored items, so no best cell" in report.missing
    cell = _cell(report, "recommendation", "sft", "ssfs", 1)
    assert cell["mean_micro_f1"] is None
    assert cell["micro_f1"] is None
    assert cell["errors"] == cell["n_items"] == 20
    assert not [c for c in report.comparisons if c["task"] == "recommendation"]
    paths = write_report(report, tmp_path)
    assert "No scored items" in paths["md"].read_text()

    only_detection = [i for i in items if i.task == "detection"]
    report = build_report(only_detection, _record(), n_resamples=N_RESAMPLES)
    assert "recommendation: no items" in report.missing


def test_items_answered_twice_are_refused(items: list[ItemResult]) -> None:
    with pytest.raises(ValueError, match="more than once"):
        build_report([*items, items[0]], _record(), n_resamples=N_RESAMPLES)


def test_paper_parity_scores_the_raw_answers_as_the_published_code_did(
    items: list[ItemResult],
) -> None:
    from ptychobench.metrics import parity_score
    from ptychobench.prompts import format_answer

    # raw answers as a model writes them; one with a label outside the vocabulary, which
    # the published scoring counts as a false positive and ours cannot see
    answered = [
        replace(
            item,
            raw_answer=format_answer(item.predicted, item.task).replace(
                "</answer>", ", Fuzzy</answer>" if i % 5 == 0 else "</answer>"
            ),
        )
        for i, item in enumerate(items)
    ]
    plain = build_report(answered, _record(), n_resamples=N_RESAMPLES)
    assert all(c["parity_micro_f1"] is None for c in plain.cells)
    report = build_report(answered, _record(paper_parity=True), n_resamples=N_RESAMPLES)
    cell = _cell(report, "recommendation", "sft", "ssfs", 3)
    members = [
        i
        for i in answered
        if (i.task, i.model, i.strategy, i.k) == ("recommendation", "sft", "ssfs", 3)
        and i.error is None
    ]
    expected = parity_score(
        [format_answer(i.truth, "recommendation") for i in members],
        [i.raw_answer for i in members],
    ).micro.f1
    assert cell["parity_micro_f1"] == pytest.approx(expected)
    assert cell["parity_micro_f1"] != cell["micro_f1"]  # the junk label costs precision
    from gateway.bench.report import render_markdown

    assert "as the published code scored it" in render_markdown(report)
