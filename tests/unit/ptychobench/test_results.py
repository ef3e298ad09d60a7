from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from ptychobench.labels import OPTION_LETTERS, Task
from ptychobench.results import (
    ScoredRun,
    evaluate_run,
    load_results,
    our_labels,
    parity_texts,
)

HALO, LINE, GRID, NULL = (
    "Halo artifacts",
    "Line artifacts",
    "Grid artifacts",
    "No obvious artifacts",
)


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    path.write_text(
        "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
        encoding="utf-8",
    )
    return path


def row(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task": "detection",
        "k": 3,
        "strategy": "ssfs",
        "sample_type": "Siemens star",
        "truth": [HALO],
        "prediction": [HALO],
    }
    base.update(fields)
    return {name: value for name, value in base.items() if value is not None}


PUBLISHED: dict[str, Any] = {
    "config": {"model_path": "unsloth/Llama-3.2-11B-Vision-Instruct", "selection_mode": "similar"},
    "similar": {
        "0-shot": {
            "overall": {"micro_f1": 0.0},
            "per_sample_type": {},
            "sample_distribution": {"Siemens star": 2},
            "raw_predictions": ["I cannot tell.", "<answer>[Halo artifacts]</answer>"],
            "ground_truths": [
                "<answer>[Halo artifacts, Line artifacts]</answer>",
                "<answer>[No obvious artifacts]</answer>",
            ],
        },
        "1-shot": {
            "raw_predictions": [
                "<answer>[Halo artifacts, Sparkles]</answer>",
                "<answer>[No obvious artifacts]</answer>",
            ],
            "ground_truths": [
                "<answer>[Halo artifacts, Line artifacts]</answer>",
                "<answer>[No obvious artifacts]</answer>",
            ],
        },
    },
    "random": {
        "1-shot": {
            "raw_predictions": ["<answer>[Grid artifacts]</answer>"],
            "ground_truths": ["<answer>[Grid artifacts]</answer>"],
        }
    },
}


def write_published(path: Path, data: dict[str, Any] = PUBLISHED) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_jsonl_lines_are_grouped_into_runs(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [
            row(model="m", k=1, truth=[HALO, LINE], prediction=[LINE]),
            row(
                model="m",
                k=1,
                strategy="SSFS",
                truth=[NULL],
                raw_answer="<answer>[Halo artifacts]</answer>",
            ),
            "",
            row(model="m", k=0, strategy="similar", sample_type="E. coli"),
            row(model="m", adapter="sft", k=1, strategy="random", id=7),
            row(task="recommendation", truth=["G", "K"], prediction=["K"]),
        ],
    )
    runs = load_results(path)
    keys = [(r.task.value, r.system, r.strategy, r.k, r.n_items) for r in runs]
    assert keys == [
        ("detection", "m", "ssfs", 0, 1),
        ("detection", "m", "ssfs", 1, 2),
        ("detection", "m + sft", "rfs", 1, 1),
        ("recommendation", "-", "ssfs", 3, 1),
    ]
    k1 = runs[1]
    assert k1.truths == ((HALO, LINE), (NULL,))
    assert k1.predictions == ((LINE,), "<answer>[Halo artifacts]</answer>")
    assert k1.sample_types == ("Siemens star", "Siemens star")
    assert k1.source == str(path)
    assert runs[2].ids == ("7",)
    assert k1.ids is None
    assert [r.task for r in load_results(path, task="recommendation")] == [Task.RECOMMENDATION]


def test_truth_labels_are_put_in_vocabulary_order(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl", [row(truth=[LINE, GRID, LINE], prediction=[LINE, GRID])]
    )
    (run,) = load_results(path)
    assert run.truths == ((GRID, LINE),)
    assert run.predictions == ((GRID, LINE),)


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (json.dumps(row(task=None)), "task", "missing"),
        (json.dumps(row(task="segmentation")), "task", "detection"),
        (json.dumps(row(k="3")), "k", "expected int"),
        (json.dumps(row(k=True)), "k", "expected int"),
        (json.dumps(row(k=-1)), "k", "negative"),
        (json.dumps(row(strategy=None)), "strategy", "missing"),
        (json.dumps(row(sample_type=None)), "sample_type", "missing"),
        (json.dumps(row(truth="Halo artifacts")), "truth", "expected list"),
        (json.dumps(row(truth=["Sparkles"])), "truth", "Sparkles"),
        (json.dumps(row(prediction=[1])), "prediction", "list of strings"),
        (json.dumps(row(prediction=None)), "prediction", "missing"),
        (json.dumps(row(prediction=None, raw_answer=3)), "raw_answer", "expected str"),
        (json.dumps(row(model=5)), "model", "expected a string"),
        (json.dumps(row(id=[1])), "id", "string or integer"),
        (json.dumps(row(task="recommendation", truth=[HALO])), "truth", "recommendation"),
    ],
)
def test_bad_lines_are_named_by_file_line_and_field(
    tmp_path: Path, line: str, field: str | None, problem: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [row(), line])
    with pytest.raises(ValueError, match=problem) as info:
        load_results(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: ")
    if field is not None:
        assert f"field {field!r}" in message


def test_a_repeated_id_within_a_run_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [row(id="a"), row(id="b"), row(id="a")])
    with pytest.raises(ValueError, match=r"r\.jsonl:3: field 'id': 'a' repeats line 1"):
        load_results(path)
    # the same id in another run is fine
    write_jsonl(path, [row(id="a"), row(id="a", k=5)])
    assert len(load_results(path)) == 2


def test_empty_file_and_missing_task_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no results"):
        load_results(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(ValueError, match="no recommendation results"):
        load_results(write_jsonl(tmp_path / "d.jsonl", [row()]), task=Task.RECOMMENDATION)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.jsonl")


def test_published_file_gives_one_run_per_strategy_and_k(tmp_path: Path) -> None:
    runs = load_results(write_published(tmp_path / "vlm_artifact_det_x.json"))
    assert [(r.strategy, r.k, r.n_items) for r in runs] == [
        ("rfs", 1, 1),
        ("ssfs", 0, 2),
        ("ssfs", 1, 2),
    ]
    assert {r.task for r in runs} == {Task.DETECTION}
    assert {r.model for r in runs} == {"unsloth/Llama-3.2-11B-Vision-Instruct"}
    assert all(r.sample_types is None for r in runs)
    assert runs[1].predictions == tuple(PUBLISHED["similar"]["0-shot"]["raw_predictions"])
    assert runs[1].truths == tuple(PUBLISHED["similar"]["0-shot"]["ground_truths"])


def test_published_task_is_inferred_from_truths_or_given(tmp_path: Path) -> None:
    data = {
        "config": {},
        "random": {
            "0-shot": {
                "raw_predictions": ["<answer>K</answer>"],
                "ground_truths": ["<answer>G, K</answer>"],
            }
        },
    }
    path = write_published(tmp_path / "p.json", data)
    (run,) = load_results(path)
    assert run.task is Task.RECOMMENDATION
    assert run.model is None
    mixed = {
        "similar": {
            "0-shot": {
                "raw_predictions": ["a", "b"],
                "ground_truths": ["<answer>[x]</answer>", "<answer>G</answer>"],
            }
        }
    }
    with pytest.raises(ValueError, match="cannot tell the task"):
        load_results(write_published(tmp_path / "m.json", mixed))
    (forced,) = load_results(write_published(tmp_path / "m.json", mixed), task="detection")
    assert forced.task is Task.DETECTION


def test_published_per_item_sample_types_are_used_when_present(tmp_path: Path) -> None:
    shot = {
        "raw_predictions": ["a", "b"],
        "ground_truths": ["<answer>G</answer>"] * 2,
        "sample_types": ["x", "y"],
    }
    (run,) = load_results(write_published(tmp_path / "p.json", {"similar": {"1-shot": shot}}))
    assert run.sample_types == ("x", "y")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"config": {}}, "neither 'similar' nor 'random'"),
        ({"similar": []}, "'<k>-shot'"),
        ({"similar": {"three": {}}}, "like '3-shot'"),
        ({"similar": {"3-shot": []}}, "expected an object"),
        ({"similar": {"3-shot": {"raw_predictions": ["a"]}}}, "'ground_truths'"),
        (
            {"similar": {"3-shot": {"raw_predictions": [1], "ground_truths": ["a"]}}},
            "'raw_predictions'",
        ),
        (
            {"similar": {"3-shot": {"raw_predictions": ["a"], "ground_truths": ["a", "b"]}}},
            "2 ground_truths but 1",
        ),
        ({"similar": {"3-shot": {"raw_predictions": [], "ground_truths": []}}}, "no items"),
    ],
)
def test_malformed_published_files_are_named(
    tmp_path: Path, data: dict[str, Any], problem: str
) -> None:
    path = write_published(tmp_path / "p.json", data)
    with pytest.raises(ValueError, match=problem) as info:
        load_results(path)
    assert str(info.value).startswith(str(path))


def sk_parity_f1(truths: list[str], preds: list[str]) -> float:
    """The published recipe, written out independently: bracket regex, drop the null
    label, sklearn over the labels that occur."""
    import re

    def labels(text: str) -> list[str]:
        match = re.search(r"<answer>\[?(.*?)\]?</answer>", text)
        if not match:
            return []
        return [x.strip() for x in match.group(1).split(",") if x.strip() and x.strip() != NULL]

    t, p = [labels(x) for x in truths], [labels(x) for x in preds]
    binarizer = MultiLabelBinarizer(classes=sorted({x for r in t + p for x in r}))
    return float(
        f1_score(
            binarizer.fit_transform(t), binarizer.transform(p), average="micro", zero_division=0
        )
    )


def test_published_run_is_scored_both_ways(tmp_path: Path) -> None:
    runs = load_results(write_published(tmp_path / "p.json"))
    one_shot = runs[2]
    evaluation = evaluate_run(one_shot, n_resamples=200, seed=3)
    # ours: item 1 -> Halo TP, Line FN ("Sparkles" unmapped); item 2 -> null TP.
    t = np.zeros((2, 12), dtype=bool)
    p = np.zeros((2, 12), dtype=bool)
    t[0, [1, 2]] = p[0, 1] = t[1, 11] = p[1, 11] = True
    assert evaluation.ours.micro.f1 == pytest.approx(
        f1_score(t, p, average="micro", zero_division=0)
    )
    assert evaluation.ours.macro.f1 == pytest.approx(
        f1_score(t, p, average="macro", zero_division=0)
    )
    assert evaluation.parse_failures == 1
    expected_parity = sk_parity_f1(
        PUBLISHED["similar"]["1-shot"]["ground_truths"],
        PUBLISHED["similar"]["1-shot"]["raw_predictions"],
    )
    assert evaluation.parity.micro.f1 == pytest.approx(expected_parity)
    assert evaluation.parity.micro.f1 != pytest.approx(evaluation.ours.micro.f1)
    assert evaluation.ours_micro_f1.point == evaluation.ours.micro.f1
    assert evaluation.parity_micro_f1.point == evaluation.parity.micro.f1
    assert evaluation.ours_micro_f1.n_resamples == 200
    zero_shot = evaluate_run(runs[1], n_resamples=50)
    assert zero_shot.parse_failures == 1  # "I cannot tell." has no answer block


def test_label_runs_are_rendered_for_parity(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [
            row(task="recommendation", truth=["K", "G"], prediction=["G"]),
            row(task="recommendation", truth=["L"], raw_answer="I suggest <answer>L, K</answer>"),
        ],
    )
    (run,) = load_results(path)
    truths, preds = parity_texts(run)
    assert truths == ["<answer>G, K</answer>", "<answer>L</answer>"]
    assert preds == ["<answer>G</answer>", "I suggest <answer>L, K</answer>"]
    ours_truths, ours_preds, failures = our_labels(run)
    assert ours_truths == [("G", "K"), ("L",)]
    assert ours_preds[0] == ("G",)
    assert failures == 0


def test_jsonl_run_scores_equal_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = []
    truths, preds = [], []
    for i in range(40):
        t = [x for x in OPTION_LETTERS if rng.random() < 0.1] or ["L"]
        p = [x for x in OPTION_LETTERS if rng.random() < 0.1]
        truths.append(t)
        preds.append(p)
        rows.append(row(task="recommendation", truth=t, prediction=p, sample_type=f"type{i % 4}"))
    (run,) = load_results(write_jsonl(tmp_path / "r.jsonl", rows))
    evaluation = evaluate_run(run, n_resamples=100)
    binarizer = MultiLabelBinarizer(classes=list(OPTION_LETTERS))
    t, p = binarizer.fit_transform(truths), binarizer.transform(preds)
    assert evaluation.ours.micro.f1 == pytest.approx(
        f1_score(t, p, average="micro", zero_division=0)
    )
    assert evaluation.ours.macro.f1 == pytest.approx(
        f1_score(t, p, average="macro", zero_division=0)
    )
    assert set(evaluation.ours.per_sample_type) == {"type0", "type1", "type2", "type3"}
    assert evaluation.parity.sample_type_items == {f"type{i}": 10 for i in range(4)}
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["ours"]["micro_f1_bootstrap"]["n_resamples"] == 100
    assert data["parity"]["labels"] == list(evaluation.parity.vocab)
    assert (data["strategy"], data["k"], data["n_items"]) == ("ssfs", 3, 40)


def test_a_truth_that_does_not_parse_is_an_error() -> None:
    run = ScoredRun(
        source="x.json",
        task=Task.DETECTION,
        model=None,
        adapter=None,
        strategy="ssfs",
        k=0,
        truths=("no answer here",),
        predictions=("<answer>[Halo artifacts]</answer>",),
    )
    with pytest.raises(ValueError, match=r"x\.json: ssfs 0-shot item 0: ground truth"):
        evaluate_run(run, n_resamples=10)


def test_parity_reads_detection_answers_with_the_published_detection_regex(
    tmp_path: Path,
) -> None:
    # The published detection script only read "<answer>[...]</answer>"; an unbracketed
    # answer counted as no labels there, while we read it.
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [row(truth=[HALO], prediction=None, raw_answer="<answer>Halo artifacts</answer>")],
    )
    (run,) = load_results(path)
    evaluation = evaluate_run(run, n_resamples=10)
    assert evaluation.ours.micro.f1 == 1.0
    assert evaluation.parse_failures == 0
    assert evaluation.parity.micro.f1 == 0.0
    assert evaluation.parity.micro.support == 1
