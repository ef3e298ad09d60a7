"""The baselines of a benchmark report: what every model is measured against.

For each task of a run, on exactly the items of that task the models answered (each
sample once, in sample-id order):

* **best constant**: the one answer that, given to every item, scores the highest
  micro-F1 (:func:`ptychobench.baselines.best_constant`). It is chosen on the evaluated
  items themselves, so it is an oracle: an upper bound for any constant answer there.
* **rule**: a simple, transparent rule that takes only what a model is given; for
  detection the majority labels of the training samples of the item's sample type
  (:func:`ptychobench.baselines.sample_type_vote`), for recommendation the observed
  artifacts and current parameters mapped to letters by physics
  (:func:`ptychobench.baselines.recommendation_rule`). It needs the run's dataset; a
  report built without it says so under *missing*.

Each has a percentile bootstrap interval from the same resamples, seed and confidence as
the model cells. Every model cell is then compared with the best constant by a paired
bootstrap over the cell's scored items (the cell minus the constant, with a two-sided
p-value), and a cell whose interval's lower bound is not above the constant's micro-F1
is marked with :data:`MARK`: it has shown nothing a fixed answer does not.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

from ptychobench.baselines import (
    best_constant,
    clears,
    recommendation_rule,
    sample_type_vote,
)
from ptychobench.bootstrap import bootstrap, paired_bootstrap
from ptychobench.labels import Task, vocabulary
from ptychobench.metrics import binarize
from ptychobench.report.tables import estimate, interval

if TYPE_CHECKING:
    from gateway.bench.records import ItemResult
    from ptychobench.data import Dataset

log = logging.getLogger(__name__)

CONSTANT: Final = "best constant"
RULE: Final = "rule"
MARK: Final = "†"
LEGEND: Final = (
    f"{MARK} does not clear the best constant: the pooled interval's lower bound is not "
    "above the best constant answer's micro-F1"
)
TRAIN_SPLIT: Final = "train"
RULES: Final[dict[str, str]] = {
    Task.DETECTION.value: (
        "the labels held by at least half of the training samples of the item's sample "
        "type (all training samples when none has that type)"
    ),
    Task.RECOMMENDATION.value: (
        "letters from the observed artifacts by physics (local distortion or grid → G, "
        "phase ramp or non-uniform background → M, halo or blurring → J, lines → T (I "
        "when OPR modes are on), noise, low contrast or singularities → K, no clear "
        "structure → Q and K), K when fewer than 100 iterations are listed, L when "
        "nothing is observed"
    ),
}


class Baseline(TypedDict):
    """One baseline of one task: its answer (the constant's, or None for a rule that
    answers each item differently), its pooled micro-F1 and interval."""

    task: str
    name: str  # CONSTANT | RULE
    split: str
    description: str
    answer: list[str] | None
    n_items: int
    micro_f1: float
    ci_low: float
    ci_high: float


def _unique(items: Sequence[ItemResult], task: str) -> list[ItemResult]:
    """One item per sample of the task (any model's: they share the truth), by id."""
    first: dict[str, ItemResult] = {}
    for item in items:
        if item.task != task:
            continue
        seen = first.setdefault(item.sample_id, item)
        if set(seen.truth) != set(item.truth):
            raise ValueError(f"{task}: sample {item.sample_id!r} carries different truths")
    return [first[key] for key in sorted(first)]


def _rule(
    task: str, samples: Sequence[ItemResult], dataset: Dataset | None, split: str
) -> list[tuple[str, ...]] | str:
    """The rule's answer to each sample, or why it cannot be given."""
    if dataset is None:
        return "no dataset was given to the report"
    if task == Task.DETECTION.value:
        if TRAIN_SPLIT not in dataset.splits(task):
            return f"the dataset has no {task} {TRAIN_SPLIT!r} split to vote from"
        train = dataset.samples(task, TRAIN_SPLIT)
        return [
            tuple(
                sample_type_vote(
                    item.sample_type, [s for s in train if s.id != item.sample_id], task
                )
            )
            for item in samples
        ]
    if split not in dataset.splits(task):
        return f"the dataset has no {task} split {split!r}"
    by_id = {sample.id: sample for sample in dataset.samples(task, split)}
    absent = [item.sample_id for item in samples if item.sample_id not in by_id]
    if absent:
        return f"{len(absent)} sample(s) not in the dataset's {split!r} split, e.g. {absent[0]!r}"
    return [
        tuple(recommendation_rule(by_id[i.sample_id].artifacts, by_id[i.sample_id].parameters))
        for i in samples
    ]


def task_baselines(
    items: Sequence[ItemResult],
    task: str,
    split: str,
    dataset: Dataset | None,
    n_resamples: int,
    seed: int,
    confidence: float,
    missing: list[str],
) -> list[Baseline]:
    """The best constant and the rule of one task (the rule left out, and the reason
    noted in ``missing``, when it cannot be computed)."""
    samples = _unique(items, task)
    if not samples:
        return []
    vocab = vocabulary(task)
    truths = [item.truth for item in samples]
    constant = best_constant(truths, vocab)
    answers: dict[str, tuple[list[tuple[str, ...]], list[str] | None, str]] = {
        CONSTANT: (
            [constant.labels] * len(samples),
            list(constant.labels),
            "oracle: the one answer with the highest micro-F1 on these very items, an "
            "upper bound for any constant answer",
        )
    }
    rule = _rule(task, samples, dataset, split)
    if isinstance(rule, str):
        missing.append(f"{task}: simple rule not computed: {rule}")
    else:
        answers[RULE] = (rule, None, RULES[task])
    out: list[Baseline] = []
    truth = binarize(truths, vocab)
    for name, (predicted, answer, description) in answers.items():
        result = bootstrap(
            truth, binarize(predicted, vocab), "micro_f1", n_resamples, seed, confidence
        )
        out.append(
            Baseline(
                task=task,
                name=name,
                split=split,
                description=description,
                answer=answer,
                n_items=len(samples),
                micro_f1=result.point,
                ci_low=result.ci_low,
                ci_high=result.ci_high,
            )
        )
    return out


class VsConstant(TypedDict):
    """A model cell against the best constant (these keys are a cell's too)."""

    clears_constant: bool | None
    minus_constant: float | None
    minus_constant_ci_low: float | None
    minus_constant_ci_high: float | None
    minus_constant_p: float | None


def against_constant(
    cell: Mapping[str, Any],
    scored: Sequence[ItemResult],
    constant: Baseline,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> VsConstant:
    """A model cell against the best constant: whether its interval clears the
    constant's micro-F1, and the cell minus the constant by a paired bootstrap over the
    cell's scored items."""
    if not scored or cell.get("micro_f1") is None:
        return VsConstant(
            clears_constant=None,
            minus_constant=None,
            minus_constant_ci_low=None,
            minus_constant_ci_high=None,
            minus_constant_p=None,
        )
    vocab = vocabulary(constant["task"])
    truth = binarize([item.truth for item in scored], vocab)
    pred = binarize([item.predicted for item in scored], vocab)
    fixed = binarize([constant["answer"] or ()] * len(scored), vocab)
    paired = paired_bootstrap(truth, pred, fixed, "micro_f1", n_resamples, seed, confidence)
    return VsConstant(
        clears_constant=clears(cell.get("ci_low"), constant["micro_f1"]),
        minus_constant=paired.point_diff,
        minus_constant_ci_low=paired.ci_low,
        minus_constant_ci_high=paired.ci_high,
        minus_constant_p=paired.p_value,
    )


def marked(cell: Mapping[str, Any]) -> bool:
    """Whether a scored cell does not clear the best constant."""
    return cell.get("clears_constant") is False


def label(name: str) -> str:
    """A baseline's row name in the tables."""
    return "best constant (oracle)" if name == CONSTANT else "simple rule"


def explanation() -> str:
    """What the baseline rows and the mark mean, for the report's text."""
    return (
        "Beside the models, two baselines scored on the same items (each sample once): "
        "the *best constant (oracle)*, the one fixed answer with the highest micro-F1 on "
        "these very items — chosen on the evaluated items, so an upper bound for any "
        "constant answer — and a *simple rule* that takes only what a model is given. "
        "Neither depends on k or seeds, so each shows the same value in every column. "
        f"{LEGEND}; such a model has shown nothing a fixed answer does not, and is not "
        "evidence that the model works."
    )


def baseline_rows(baselines: Sequence[Baseline]) -> list[list[str]]:
    """Rows of the baselines table: name, answer, items, micro-F1 [CI], what it is."""
    return [
        [
            label(b["name"]),
            ", ".join(b["answer"]) if b["answer"] is not None else "per item",
            str(b["n_items"]),
            estimate(b["micro_f1"], b["ci_low"], b["ci_high"]),
            b["description"],
        ]
        for b in baselines
    ]


BASELINE_HEADER: Final = ("baseline", "answer", "items", "micro-F1 [CI]", "what it is")
VS_HEADER: Final = ("model", "strategy", "k", "pooled [CI]", "− constant", "CI", "p", "clears")
VS_TEXT: Final = (
    "Each cell's pooled micro-F1 minus the best constant's on the cell's items, by a "
    "paired bootstrap; p is two-sided for no difference."
)


def vs_constant_rows(
    cells: Sequence[Mapping[str, Any]], strategy_label: Callable[[str], str]
) -> list[list[str]]:
    """Rows of the against-the-constant table, one per scored cell."""
    return [
        [
            c["model"],
            strategy_label(c["strategy"]),
            str(c["k"]),
            estimate(c["micro_f1"], c["ci_low"], c["ci_high"]),
            f"{c['minus_constant']:+.3f}",
            interval(c["minus_constant_ci_low"], c["minus_constant_ci_high"], "+.3f"),
            f"{c['minus_constant_p']:.4f}",
            "yes" if c["clears_constant"] else f"no {MARK}",
        ]
        for c in cells
        if c.get("clears_constant") is not None
    ]


CSV_COLUMNS: Final = (
    "task",
    "baseline",
    "split",
    "k",
    "answer",
    "n_items",
    "micro_f1",
    "ci_low",
    "ci_high",
    "description",
)


def csv_rows(baselines: Sequence[Baseline]) -> list[list[str]]:
    """Rows of ``baselines.csv``."""
    return [
        [
            b["task"],
            b["name"],
            b["split"],
            "all",
            " ".join(b["answer"]) if b["answer"] is not None else "",
            str(b["n_items"]),
            str(b["micro_f1"]),
            str(b["ci_low"]),
            str(b["ci_high"]),
            b["description"],
        ]
        for b in baselines
    ]


def render_csv(baselines: Sequence[Baseline]) -> str:
    """What ``baselines.csv`` holds: one row per task and baseline; k is "all", since a
    baseline does not depend on it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(baselines))
    return out.getvalue()


def read_dataset(path: str | Path, root: Path | None = None) -> Dataset | None:
    """The run's dataset for the rule, or None (logged) when it cannot be read."""
    from ptychobench.data import read_release

    dataset_path = Path(path)
    if root is not None and not dataset_path.is_absolute():
        dataset_path = root / dataset_path
    try:
        return read_release(dataset_path, strict_images=False)
    except (OSError, ValueError) as error:
        log.warning("baselines: cannot read the dataset %s: %s", dataset_path, error)
        return None


__all__ = [
    "BASELINE_HEADER",
    "CONSTANT",
    "CSV_COLUMNS",
    "LEGEND",
    "MARK",
    "RULE",
    "VS_HEADER",
    "VS_TEXT",
    "Baseline",
    "VsConstant",
    "against_constant",
    "baseline_rows",
    "csv_rows",
    "explanation",
    "label",
    "marked",
    "read_dataset",
    "render_csv",
    "task_baselines",
    "vs_constant_rows",
]
