"""The quickstart job: the benchmark core on PtychoBench-Sim (or the toy example set).

Steps, each reported as it finishes: load the committed PtychoBench-Sim release (or,
where it is absent, make the toy example data); write it in the authors'
release layout and read it back (the round trip must be exact); build every k-shot
conversation for both tasks and both strategies, measuring how much of each prompt is
shared with the previous query's (what a prefix cache can reuse); predict with the
example-vote baseline; score with bootstrap CIs under our scoring and the published
parity scoring; compare SSFS with RFS by a paired bootstrap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ptychobench.baselines import example_vote
from ptychobench.bootstrap import paired_bootstrap
from ptychobench.data import Dataset, Sample, read_release, split_samples, write_release
from ptychobench.labels import Task, vocabulary
from ptychobench.metrics import binarize, parity_score
from ptychobench.prompts import PROMPT_VERSION, build_for_sample, format_answer
from ptychobench.report import interval, label_matrices, number, pooled, write_atomic
from ptychobench.selection import Strategy, select_examples
from ptychobench.toy import make_toy_samples

KS = (0, 1, 3, 5, 7)
DEFAULT_DATASET = Path(__file__).resolve().parents[1] / "data" / "ptychobench-sim"
"""The committed PtychoBench-Sim release (present in a source checkout)."""


@dataclass
class Cell:
    """One (task, strategy, k) cell of the benchmark."""

    task: Task
    strategy: Strategy
    k: int
    truths: list[tuple[str, ...]]
    predictions: list[list[str]]
    sample_types: list[str]
    shared_prefix: float


def load_dataset(out: Path, seed: int, source: Path | None) -> tuple[Dataset, str]:
    """The release at ``source`` when there is one, else the toy set; and its name."""
    if source is not None and (source / "annotations").is_dir():
        return read_release(source), f"PtychoBench-Sim ({source})"
    return make_dataset(out, seed), "toy example set"


def make_dataset(out: Path, seed: int) -> Dataset:
    """The example dataset, split 80/20 by sample type; the recommendation subset is
    the samples whose advice asks for a change."""
    samples = make_toy_samples(out / "source-images", per_type=40, seed=seed)
    train, test = split_samples(samples, test_fraction=0.2, seed=seed)

    def advised(split: Sequence[Sample]) -> tuple[Sample, ...]:
        return tuple(s for s in split if s.options != ("L",))

    return Dataset(
        root=None,
        detection={"train": tuple(train), "test": tuple(test)},
        recommendation={"train": advised(train), "test": advised(test)},
        metadata={},
    )


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def run_cell(dataset: Dataset, task: Task, strategy: Strategy, k: int, seed: int) -> Cell:
    """Build every conversation of one cell and predict with the example vote."""
    train = dataset.samples(task, "train")
    test = sorted(dataset.samples(task, "test"), key=lambda s: (s.sample_type, s.id))
    cell = Cell(task, strategy, k, [], [], [], 0.0)
    shared = total = 0
    previous = ""
    for query in test:
        examples = select_examples(query, train, k, strategy, seed)
        conversation = build_for_sample(task, query, examples)
        text = json.dumps(conversation.messages)
        shared += _common_prefix(previous, text)
        total += len(text)
        previous = text
        cell.truths.append(query.labels(task))
        cell.predictions.append(example_vote(examples, task))
        cell.sample_types.append(query.sample_type)
    cell.shared_prefix = shared / total if total else 0.0
    return cell


def score_cell(cell: Cell, n_resamples: int, seed: int) -> dict[str, Any]:
    """Micro/macro F1 with bootstrap CIs, ours and parity."""
    vocab = vocabulary(cell.task)
    y_true, y_pred = label_matrices(cell.truths, cell.predictions, vocab)
    found = pooled(y_true, y_pred, vocab, cell.sample_types, n_resamples=n_resamples, seed=seed)
    ours, ci = found.scores, found.micro_f1
    parity = parity_score(
        [format_answer(t, cell.task) for t in cell.truths],
        [format_answer(p, cell.task) for p in cell.predictions],
    )
    return {
        "task": cell.task.value,
        "strategy": cell.strategy.value,
        "k": cell.k,
        "n": len(cell.truths),
        "micro_f1": ours.micro.f1,
        "micro_f1_ci": [ci.ci_low, ci.ci_high],
        "micro_f1_bootstrap_mean": ci.mean,
        "micro_f1_bootstrap_std": ci.std,
        "macro_f1": ours.macro.f1,
        "parity_micro_f1": parity.micro.f1,
        "shared_prompt_prefix": cell.shared_prefix,
        "per_sample_type_f1": {name: prf.f1 for name, prf in ours.per_sample_type.items()},
    }


def write_results(path: Path, cells: Sequence[Cell]) -> None:
    """Per-item predictions in our JSONL results format (read by `ptychoagent score`)."""
    with path.open("w", encoding="utf-8") as handle:
        for cell in cells:
            for truth, prediction, sample_type in zip(
                cell.truths, cell.predictions, cell.sample_types, strict=True
            ):
                row = {
                    "task": cell.task.value,
                    "model": "example-vote",
                    "strategy": cell.strategy.value,
                    "k": cell.k,
                    "sample_type": sample_type,
                    "truth": list(truth),
                    "raw_answer": format_answer(prediction, cell.task),
                }
                handle.write(json.dumps(row) + "\n")


def _table(rows: Sequence[dict[str, Any]], task: Task) -> Table:
    table = Table(title=f"{task.value}: example-vote baseline (micro-F1, 95 % bootstrap CI)")
    for column in ("strategy", "k", "n", "micro-F1", "95 % CI", "macro-F1", "parity", "prefix"):
        table.add_column(column, justify="right")
    for row in rows:
        if row["task"] != task.value:
            continue
        low, high = row["micro_f1_ci"]
        table.add_row(
            row["strategy"].upper(),
            str(row["k"]),
            str(row["n"]),
            number(row["micro_f1"]),
            interval(low, high),
            number(row["macro_f1"]),
            number(row["parity_micro_f1"]),
            f"{row['shared_prompt_prefix']:.0%}",
        )
    return table


def run_quickstart(
    out: Path,
    *,
    seed: int,
    n_resamples: int,
    console: Console,
    dataset_dir: Path | None = DEFAULT_DATASET,
) -> dict[str, Any]:
    """Run every step, print what happened, and return the report (also written)."""
    out.mkdir(parents=True, exist_ok=True)
    dataset, name = load_dataset(out, seed, dataset_dir)
    release = out / "dataset"
    write_release(dataset, release)
    reread = read_release(release)
    for task in Task:
        for split in ("train", "test"):
            before = [s.labels(task) for s in dataset.samples(task, split)]
            after = [s.labels(task) for s in reread.samples(task, split)]
            if before != after:
                raise RuntimeError(f"release round trip changed the {task} {split} labels")
    console.print(
        f"[bold]1.[/] {name} written in the release layout to {release} and read "
        f"back unchanged: detection {len(reread.samples(Task.DETECTION, 'train'))} train / "
        f"{len(reread.samples(Task.DETECTION, 'test'))} test, recommendation "
        f"{len(reread.samples(Task.RECOMMENDATION, 'train'))} / "
        f"{len(reread.samples(Task.RECOMMENDATION, 'test'))}"
    )
    cells = [
        run_cell(reread, task, strategy, k, seed)
        for task in Task
        for strategy in (Strategy.SSFS, Strategy.RFS)
        for k in KS
    ]
    console.print(
        f"[bold]2.[/] built {sum(len(c.truths) for c in cells)} conversations "
        f"({PROMPT_VERSION}; k = {', '.join(map(str, KS))}; SSFS and RFS; training pool only)"
    )
    rows = [score_cell(cell, n_resamples, seed) for cell in cells]
    comparisons = [_compare(cells, task, n_resamples, seed) for task in Task]
    results_path = out / "results.jsonl"
    write_results(results_path, cells)
    console.print(
        f"[bold]3.[/] scored the example-vote baseline ({n_resamples} bootstrap resamples, "
        f"seed {seed}); per-item results in {results_path}"
    )
    for task in Task:
        console.print(_table(rows, task))
    for comparison in comparisons:
        console.print(
            f"SSFS − RFS at k=7 ({comparison['task']}): {comparison['difference']:+.3f} "
            f"micro-F1, 95 % CI [{comparison['ci'][0]:+.3f}, {comparison['ci'][1]:+.3f}], "
            f"p = {comparison['p_value']:.3f}"
        )
    report = {
        "dataset": name,
        "seed": seed,
        "n_resamples": n_resamples,
        "cells": rows,
        "ssfs_vs_rfs": comparisons,
    }
    write_atomic(out / "report.json", json.dumps(report, indent=2).encode())
    console.print(f"report: {out / 'report.json'}  ·  rescore: ptychoagent score {results_path}")
    return report


def _compare(cells: Sequence[Cell], task: Task, n_resamples: int, seed: int) -> dict[str, Any]:
    vocab = vocabulary(task)
    ssfs, rfs = (
        next(c for c in cells if c.task is task and c.strategy is s and c.k == KS[-1])
        for s in (Strategy.SSFS, Strategy.RFS)
    )
    y_true, y_ssfs = label_matrices(ssfs.truths, ssfs.predictions, vocab)
    result = paired_bootstrap(
        y_true,
        y_ssfs,
        binarize(rfs.predictions, vocab),
        n_resamples=n_resamples,
        seed=seed,
    )
    return {
        "task": task.value,
        "k": KS[-1],
        "difference": result.point_diff,
        "ci": [result.ci_low, result.ci_high],
        "p_value": result.p_value,
    }
