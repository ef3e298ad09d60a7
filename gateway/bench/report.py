"""A benchmark run reported in the paper's form.

:func:`build_report` turns the answered items of a run (:class:`~gateway.bench.records.
ItemResult`) into a :class:`Report` of plain, JSON-ready data; it reads and writes
nothing. :func:`write_report` writes it out (``report.md``, ``cells.csv``,
``report.json``, ``f1_vs_k.png``, ``baselines.csv``) and :func:`render_tables` gives
the console's tables.

What the numbers are (PtychoBench's metric, over the task's fixed vocabulary, see
:mod:`ptychobench.metrics`):

* A *cell* is one (task, model, strategy, k). Its ``mean_micro_f1 ± std_micro_f1`` is
  the mean and the population standard deviation (NumPy's default, as published) over
  seeds of the micro-F1 of each seed's answers: the paper's Tables 1 and 2.
* ``micro_f1`` pools every seed's answers of the cell and scores them together; its 95 %
  percentile interval comes from a bootstrap over those pooled items
  (:func:`ptychobench.bootstrap.bootstrap`): Tables 7 and 8. ``macro_f1`` averages the
  per-class F1 of the pooled answers over the whole vocabulary.
* Items with ``error`` set (no answer after the retries) are left out of every score and
  counted under ``errors``; answers with fragments that matched no label are scored on
  what could be read and counted under ``parse_failures``.
* Items with strategy ``"none"`` take no examples (k = 0, the classifier). They belong
  to every strategy of their task, so the same k = 0 answers fill the k = 0 column of
  the SSFS row and of the RFS row. A model with only such items (the classifier) is
  reported under strategy ``"none"``.
* ``best`` is, for each task, the cell with the highest mean micro-F1 (ties go to the
  first cell in report order, the others are listed). For it, per-class precision,
  recall and F1 over the vocabulary (Table 9) and micro scores per sample type
  (Table 10) of its pooled answers.
* ``baselines`` are, per task, the best constant answer (an oracle chosen on the
  evaluated items) and a simple rule, scored on the same items with the same bootstrap;
  every cell carries whether its interval clears the best constant and its paired
  difference from it, and one that does not is marked wherever it is shown
  (:mod:`gateway.bench.baselines`).
* ``comparisons`` are paired bootstraps (:func:`ptychobench.bootstrap.paired_bootstrap`)
  of pooled micro-F1, A − B, on the same items matched by (sample id, seed) within the
  same task, strategy and k, items that failed in either system left out: each pair of
  models of ``config["comparisons"]`` (default: ``sft`` against ``base``) at every
  strategy and k both answered (k = 0 once, under ``"none"``), and SSFS against RFS for
  each model at each k > 0.
* ``closed_loop`` (the closed-loop task, :mod:`ptychobench.closed_loop`): one arm per
  baseline (none, random, constant, oracle, rule) and per model × strategy × k (seeds pooled; k = 0
  once, without examples): the fix rate (share of samples whose letters closed at least
  ``min_fix_gain`` of the NRMSE gap to the clean reconstruction) with its bootstrap
  interval, the median gain, the paired fix-rate difference from none and from oracle
  (interval and two-sided p), rounds, reconstructions and seconds per round.

Everything is sorted, and the only times in the output are those of the run record, so
the same items give byte-identical ``report.json``, ``cells.csv`` and ``report.md``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

import numpy as np
from rich.table import Table

from gateway.bench import baselines as bl
from gateway.bench.config import CLOSED_LOOP
from gateway.bench.records import ItemResult, RunRecord
from ptychobench.bootstrap import bootstrap, paired_bootstrap
from ptychobench.closed_loop import BASELINE_ARMS, render_table, summarize
from ptychobench.labels import Task, vocabulary
from ptychobench.metrics import BoolMatrix, binarize, parity_score, score
from ptychobench.prompts import format_answer

if TYPE_CHECKING:
    from ptychobench.data import Dataset

CONFIDENCE: Final = 0.95
NO_STRATEGY: Final = "none"
STRATEGY_ORDER: Final[tuple[str, ...]] = ("ssfs", "rfs", "semantic", NO_STRATEGY)
"""Row order within a model (the paper lists SSFS first); other strategies follow by name."""
DEFAULT_COMPARISONS: Final[tuple[tuple[str, str], ...]] = (("sft", "base"),)
FILES: Final[dict[str, str]] = {
    "md": "report.md",
    "csv": "cells.csv",
    "json": "report.json",
    "png": "f1_vs_k.png",
    "baselines": "baselines.csv",
}
"""What :func:`write_report` writes: key of the returned mapping → file name."""
_MAX_ERROR_TEXT: Final = 200


class SeedScore(TypedDict):
    seed: int
    n_items: int
    n_scored: int
    micro_f1: float | None


class Cell(bl.VsConstant):
    """One (task, model, strategy, k) of the run; the keys of
    :class:`~gateway.bench.baselines.VsConstant` say whether its pooled interval clears
    the best constant (None: nothing scored) and by how much it differs from it."""

    task: str
    model: str
    strategy: str
    k: int
    sources: list[str]
    """The strategies the items were sent with ("none" for shared k = 0 answers)."""
    adapters: list[str]
    n_items: int
    n_scored: int
    errors: int
    parse_failures: int
    n_seeds: int
    seeds: list[int]
    per_seed: list[SeedScore]
    mean_micro_f1: float | None
    std_micro_f1: float | None
    micro_f1: float | None
    ci_low: float | None
    ci_high: float | None
    micro_precision: float | None
    micro_recall: float | None
    macro_f1: float | None
    macro_f1_present: float | None
    mean_latency_s: float | None
    parity_micro_f1: float | None
    """With ``paper_parity``: the pooled micro-F1 as the published code scored it (its
    answer regex on the raw text, the label set of what occurs, the null label dropped)."""
    """Mean latency of the answered (not failed) items."""


class ClassScore(TypedDict):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class SampleTypeScore(TypedDict):
    sample_type: str
    n_items: int
    precision: float
    recall: float
    f1: float
    support: int


class Best(TypedDict):
    """The task's cell with the highest mean micro-F1, with its per-class and
    per-sample-type scores (pooled over seeds)."""

    task: str
    model: str
    strategy: str
    k: int
    mean_micro_f1: float
    std_micro_f1: float
    n_seeds: int
    micro_f1: float
    ties: list[str]
    clears_constant: bool | None
    per_class: list[ClassScore]
    per_sample_type: list[SampleTypeScore]


class Comparison(TypedDict):
    """Pooled micro-F1 of A minus B by a paired bootstrap over matched items."""

    kind: str  # "models" (e.g. SFT vs base) | "strategies" (SSFS vs RFS)
    task: str
    k: int
    a_model: str
    a_strategy: str
    b_model: str
    b_strategy: str
    n_items: int
    n_unpaired: int
    """Items of either side left out: no partner with the same (sample, seed), or an
    error in either."""
    a_micro_f1: float
    b_micro_f1: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


class ErrorCount(TypedDict):
    message: str
    count: int


class Totals(TypedDict):
    """Items as sent (shared k = 0 answers counted once) of one task and model."""

    task: str
    model: str
    n_items: int
    errors: int
    parse_failures: int
    error_messages: list[ErrorCount]


@dataclass(frozen=True)
class Report:
    """A run's report: plain JSON-ready data, sorted (see the module's docstring)."""

    run: dict[str, Any]
    settings: dict[str, Any]
    tasks: list[str]
    """Tasks with at least one cell, sorted."""
    cells: list[Cell] = field(default_factory=list)
    best: dict[str, Best] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    totals: list[Totals] = field(default_factory=list)
    baselines: list[bl.Baseline] = field(default_factory=list)
    closed_loop: list[dict[str, Any]] = field(default_factory=list)
    """The closed-loop arms in order: ``arm``, ``model``, ``strategy``, ``k`` and the
    summary of :func:`ptychobench.closed_loop.summarize`."""
    missing: list[str] = field(default_factory=list)
    """What the report could not give, and why, in words."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "settings": self.settings,
            "tasks": self.tasks,
            "cells": self.cells,
            "best": self.best,
            "comparisons": self.comparisons,
            "totals": self.totals,
            "baselines": self.baselines,
            "closed_loop": self.closed_loop,
            "missing": self.missing,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def cell(self, task: str, model: str, strategy: str, k: int) -> Cell | None:
        """The cell of (task, model, strategy, k), or None."""
        for cell in self.cells:
            if (cell["task"], cell["model"], cell["strategy"], cell["k"]) == (
                task,
                model,
                strategy,
                k,
            ):
                return cell
        return None

    def task_cells(self, task: str) -> list[Cell]:
        return [cell for cell in self.cells if cell["task"] == task]


# --------------------------------------------------------------------------- building

_CellKey = tuple[str, str, str, int]  # task, model, strategy, k


def _strategy_rank(strategy: str) -> tuple[int, str]:
    if strategy in STRATEGY_ORDER:
        return STRATEGY_ORDER.index(strategy), strategy
    return len(STRATEGY_ORDER), strategy


def _cell_sort_key(key: _CellKey) -> tuple[str, str, tuple[int, str], int]:
    task, model, strategy, k = key
    return task, model, _strategy_rank(strategy), k


def _item_order(item: ItemResult) -> tuple[int, str, str]:
    return item.seed, item.sample_id, item.strategy


def _cell_name(key: _CellKey) -> str:
    task, model, strategy, k = key
    return f"{task} {model} {strategy} k={k}"


def _plain(value: Any) -> Any:
    """A JSON round trip: tuples become lists, anything exotic its string."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _matrices(
    items: Sequence[ItemResult], vocab: Sequence[str], where: str
) -> tuple[BoolMatrix, BoolMatrix]:
    try:
        return (
            binarize([item.truth for item in items], vocab),
            binarize([item.predicted for item in items], vocab),
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_unique(items: Iterable[ItemResult]) -> None:
    seen: Counter[tuple[str, str, str, int, int, str]] = Counter(
        (i.task, i.model, i.strategy, i.k, i.seed, i.sample_id) for i in items
    )
    repeated = sorted(key for key, count in seen.items() if count > 1)
    if repeated:
        shown = ", ".join("/".join(map(str, key)) for key in repeated[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise ValueError(f"items answered more than once: {shown}{more}")


def _expected_tasks(config: dict[str, Any]) -> list[str]:
    tasks = config.get("tasks")
    if isinstance(tasks, list | tuple) and all(isinstance(t, str) for t in tasks):
        return sorted(set(tasks))
    return sorted(task.value for task in Task)


def _configured_models(config: dict[str, Any], task: str) -> list[str]:
    models = config.get("models")
    if not isinstance(models, dict):
        return []
    entries = models.get(task)
    if not isinstance(entries, list | tuple):
        return []
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    return sorted({name for name in names if isinstance(name, str)})


def _comparison_pairs(config: dict[str, Any], missing: list[str]) -> list[tuple[str, str]]:
    raw = config.get("comparisons")
    if raw is None:
        return list(DEFAULT_COMPARISONS)
    pairs: list[tuple[str, str]] = []
    if not isinstance(raw, list | tuple):
        missing.append(f"config comparisons {raw!r} is not a list of [A, B] pairs: ignored")
        return pairs
    for entry in raw:
        if (
            isinstance(entry, list | tuple)
            and len(entry) == 2
            and all(isinstance(name, str) for name in entry)
            and entry[0] != entry[1]
        ):
            pair = (entry[0], entry[1])
            if pair not in pairs:
                pairs.append(pair)
        else:
            missing.append(f"config comparison {entry!r} is not a pair of two model names: ignored")
    return pairs


def _expand(
    items: Sequence[ItemResult],
) -> dict[_CellKey, list[ItemResult]]:
    """Items by cell, "none" items copied into every strategy of their task."""
    strategies: dict[str, set[str]] = defaultdict(set)
    model_strategies: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in items:
        model_strategies[item.task, item.model].add(item.strategy)
        if item.strategy != NO_STRATEGY:
            strategies[item.task].add(item.strategy)
    cells: dict[_CellKey, list[ItemResult]] = defaultdict(list)
    for item in items:
        if item.strategy != NO_STRATEGY:
            targets = [item.strategy]
        elif model_strategies[item.task, item.model] == {NO_STRATEGY}:
            targets = [NO_STRATEGY]
        else:
            targets = sorted(strategies[item.task])
        for strategy in targets:
            cells[item.task, item.model, strategy, item.k].append(item)
    for key, members in cells.items():
        members.sort(key=_item_order)
        seen = Counter((item.seed, item.sample_id) for item in members)
        clash = sorted(pair for pair, count in seen.items() if count > 1)
        if clash:
            seed, sample = clash[0]
            raise ValueError(
                f"{_cell_name(key)}: sample {sample!r} at seed {seed} was answered both "
                "without examples (strategy 'none') and with this strategy"
            )
    return cells


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _cell(
    key: _CellKey,
    members: Sequence[ItemResult],
    n_resamples: int,
    seed: int,
    missing: list[str],
    parity: bool = False,
) -> Cell:
    task, model, strategy, k = key
    vocab = vocabulary(task)
    scored = [item for item in members if item.error is None]
    seeds = sorted({item.seed for item in members})
    per_seed: list[SeedScore] = []
    for s in seeds:
        at_seed = [item for item in members if item.seed == s]
        answered = [item for item in at_seed if item.error is None]
        f1: float | None = None
        if answered:
            truth, pred = _matrices(answered, vocab, f"{_cell_name(key)} seed {s}")
            f1 = score(truth, pred, vocab).micro.f1
        elif scored:
            missing.append(f"{_cell_name(key)} seed {s}: no scored items (all failed)")
        per_seed.append(
            SeedScore(seed=s, n_items=len(at_seed), n_scored=len(answered), micro_f1=f1)
        )
    f1s = [entry["micro_f1"] for entry in per_seed if entry["micro_f1"] is not None]
    cell = Cell(
        task=task,
        model=model,
        strategy=strategy,
        k=k,
        sources=sorted({item.strategy for item in members}, key=_strategy_rank),
        adapters=sorted({item.adapter for item in members}),
        n_items=len(members),
        n_scored=len(scored),
        errors=len(members) - len(scored),
        parse_failures=sum(item.parse_failure for item in scored),
        n_seeds=len(seeds),
        seeds=seeds,
        per_seed=per_seed,
        mean_micro_f1=_mean(f1s),
        std_micro_f1=float(np.std(f1s)) if f1s else None,
        micro_f1=None,
        ci_low=None,
        ci_high=None,
        micro_precision=None,
        micro_recall=None,
        macro_f1=None,
        macro_f1_present=None,
        mean_latency_s=_mean([item.latency_s for item in scored]),
        parity_micro_f1=None,
        clears_constant=None,
        minus_constant=None,
        minus_constant_ci_low=None,
        minus_constant_ci_high=None,
        minus_constant_p=None,
    )
    if not scored:
        missing.append(f"{_cell_name(key)}: no scored items ({cell['errors']} failed)")
        return cell
    truth, pred = _matrices(scored, vocab, _cell_name(key))
    pooled = score(truth, pred, vocab)
    interval = bootstrap(truth, pred, "micro_f1", n_resamples, seed, CONFIDENCE)
    cell["micro_f1"] = pooled.micro.f1
    cell["ci_low"], cell["ci_high"] = interval.ci_low, interval.ci_high
    cell["micro_precision"] = pooled.micro.precision
    cell["micro_recall"] = pooled.micro.recall
    cell["macro_f1"] = pooled.macro.f1
    cell["macro_f1_present"] = pooled.macro_over_present.f1
    if parity:
        cell["parity_micro_f1"] = parity_score(
            [format_answer(item.truth, task) for item in scored],
            [item.raw_answer for item in scored],
            require_brackets=task == "detection",
        ).micro.f1
    return cell


def _best(task: str, cells: Sequence[Cell], members: dict[_CellKey, list[ItemResult]]) -> Best:
    top = max(cell["mean_micro_f1"] or 0.0 for cell in cells)
    winners = [cell for cell in cells if cell["mean_micro_f1"] == top]
    chosen = winners[0]
    key: _CellKey = (task, chosen["model"], chosen["strategy"], chosen["k"])
    vocab = vocabulary(task)
    scored = [item for item in members[key] if item.error is None]
    truth, pred = _matrices(scored, vocab, _cell_name(key))
    scores = score(truth, pred, vocab, [item.sample_type for item in scored])
    assert chosen["std_micro_f1"] is not None
    assert chosen["micro_f1"] is not None
    return Best(
        task=task,
        model=chosen["model"],
        strategy=chosen["strategy"],
        k=chosen["k"],
        mean_micro_f1=top,
        std_micro_f1=chosen["std_micro_f1"],
        n_seeds=sum(entry["micro_f1"] is not None for entry in chosen["per_seed"]),
        micro_f1=chosen["micro_f1"],
        ties=[f"{c['model']} {c['strategy']} k={c['k']}" for c in winners[1:]],
        clears_constant=chosen["clears_constant"],
        per_class=[
            ClassScore(
                label=label,
                precision=prf.precision,
                recall=prf.recall,
                f1=prf.f1,
                support=prf.support,
            )
            for label, prf in scores.per_class.items()
        ],
        per_sample_type=[
            SampleTypeScore(
                sample_type=name,
                n_items=scores.sample_type_items[name],
                precision=prf.precision,
                recall=prf.recall,
                f1=prf.f1,
                support=prf.support,
            )
            for name, prf in sorted(scores.per_sample_type.items())
        ],
    )


def _compare(
    kind: str,
    task: str,
    k: int,
    a: tuple[str, str, list[ItemResult]],
    b: tuple[str, str, list[ItemResult]],
    n_resamples: int,
    seed: int,
    missing: list[str],
) -> Comparison | None:
    (a_model, a_strategy, a_items), (b_model, b_strategy, b_items) = a, b
    by_a = {(item.sample_id, item.seed): item for item in a_items}
    by_b = {(item.sample_id, item.seed): item for item in b_items}
    keys = sorted(
        key for key in set(by_a) & set(by_b) if by_a[key].error is None and by_b[key].error is None
    )
    name = f"{task} k={k}: {a_model} {a_strategy} − {b_model} {b_strategy}"
    if not keys:
        missing.append(f"{name}: no items answered by both; not compared")
        return None
    vocab = vocabulary(task)
    truth_a, pred_a = _matrices([by_a[key] for key in keys], vocab, name)
    truth_b, pred_b = _matrices([by_b[key] for key in keys], vocab, name)
    if not np.array_equal(truth_a, truth_b):
        raise ValueError(f"{name}: the same samples carry different truths")
    result = paired_bootstrap(truth_a, pred_a, pred_b, "micro_f1", n_resamples, seed, CONFIDENCE)
    return Comparison(
        kind=kind,
        task=task,
        k=k,
        a_model=a_model,
        a_strategy=a_strategy,
        b_model=b_model,
        b_strategy=b_strategy,
        n_items=len(keys),
        n_unpaired=len(by_a) + len(by_b) - 2 * len(keys),
        a_micro_f1=result.point_a,
        b_micro_f1=result.point_b,
        diff=result.point_diff,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        p_value=result.p_value,
    )


def _comparisons(
    raw: dict[_CellKey, list[ItemResult]],
    pairs: Sequence[tuple[str, str]],
    n_resamples: int,
    seed: int,
    missing: list[str],
) -> list[Comparison]:
    out: list[Comparison] = []
    tasks = sorted({key[0] for key in raw})
    for task in tasks:
        groups = sorted(
            {(s, k) for (t, _, s, k) in raw if t == task},
            key=lambda g: (g[1], _strategy_rank(g[0])),
        )
        models = {m for (t, m, _, _) in raw if t == task}
        for a_model, b_model in pairs:
            if a_model not in models or b_model not in models:
                continue
            shared = [
                (s, k)
                for s, k in groups
                if (task, a_model, s, k) in raw and (task, b_model, s, k) in raw
            ]
            if not shared:
                missing.append(
                    f"{task}: {a_model} and {b_model} share no strategy and k; not compared"
                )
            for s, k in shared:
                found = _compare(
                    "models",
                    task,
                    k,
                    (a_model, s, raw[task, a_model, s, k]),
                    (b_model, s, raw[task, b_model, s, k]),
                    n_resamples,
                    seed,
                    missing,
                )
                if found is not None:
                    out.append(found)
        for model in sorted(models):
            ks = sorted(
                {k for (t, m, s, k) in raw if t == task and m == model and s == "ssfs" and k > 0}
            )
            for k in ks:
                if (task, model, "rfs", k) not in raw:
                    continue
                found = _compare(
                    "strategies",
                    task,
                    k,
                    (model, "ssfs", raw[task, model, "ssfs", k]),
                    (model, "rfs", raw[task, model, "rfs", k]),
                    n_resamples,
                    seed,
                    missing,
                )
                if found is not None:
                    out.append(found)
    out.sort(
        key=lambda c: (
            c["task"],
            c["kind"],
            c["a_model"],
            c["b_model"],
            c["k"],
            _strategy_rank(c["a_strategy"]),
            _strategy_rank(c["b_strategy"]),
        )
    )
    return out


def _totals(items: Sequence[ItemResult]) -> list[Totals]:
    groups: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
    for item in items:
        groups[item.task, item.model].append(item)
    out: list[Totals] = []
    for (task, model), members in sorted(groups.items()):
        messages = Counter(
            " ".join(item.error.split())[:_MAX_ERROR_TEXT]
            for item in members
            if item.error is not None
        )
        out.append(
            Totals(
                task=task,
                model=model,
                n_items=len(members),
                errors=sum(messages.values()),
                parse_failures=sum(item.parse_failure and item.error is None for item in members),
                error_messages=[
                    ErrorCount(message=message, count=count)
                    for message, count in sorted(messages.items(), key=lambda m: (-m[1], m[0]))
                ],
            )
        )
    return out


def build_report(
    items: Sequence[ItemResult],
    record: RunRecord,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    dataset: Dataset | None = None,
) -> Report:
    """The run's report (see the module's docstring for what each number is).

    ``n_resamples`` and ``seed`` drive every bootstrap (each one starts from ``seed``).
    ``dataset`` (the run's, see :func:`gateway.bench.baselines.read_dataset`) is what
    the simple rule reads; without it the report has the best constant only.
    Raises ``ValueError`` for items answered twice, for labels outside the task's
    vocabulary, and for matched items whose truths differ; anything merely absent
    (no items, no scored items, a seed that failed entirely) goes into ``missing``.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    missing: list[str] = []
    config = record.config if isinstance(record.config, dict) else {}
    known = {task.value for task in Task}
    unknown = Counter(item.task for item in items if item.task not in {*known, CLOSED_LOOP})
    for task, count in sorted(unknown.items()):
        missing.append(f"{count} items of unknown task {task!r}: ignored")
    kept = [item for item in items if item.task in known]
    looped = [item for item in items if item.task == CLOSED_LOOP]
    _check_unique([*kept, *looped])

    if not items:
        missing.append("no items: the run has answered nothing yet")
    for task in _expected_tasks(config):
        task_items = [item for item in [*kept, *looped] if item.task == task]
        if items and not task_items:
            missing.append(f"{task}: no items")
        present = {item.model for item in task_items}
        for model in _configured_models(config, task):
            if task_items and model not in present:
                missing.append(f"{task}: model {model} has no items")

    members = _expand(kept)
    keys = sorted(members, key=_cell_sort_key)
    parity = bool(config.get("paper_parity", False))
    cells = [_cell(key, members[key], n_resamples, seed, missing, parity) for key in keys]

    tasks = sorted({cell["task"] for cell in cells})
    baselines: list[bl.Baseline] = []
    for task in tasks:
        found = bl.task_baselines(
            kept, task, record.split, dataset, n_resamples, seed, CONFIDENCE, missing
        )
        baselines += found
        for key, cell in zip(keys, cells, strict=True):
            if found and key[0] == task:
                scored = [item for item in members[key] if item.error is None]
                vs = bl.against_constant(cell, scored, found[0], n_resamples, seed, CONFIDENCE)
                cell.update(vs)  # type: ignore[typeddict-item]  # VsConstant is Cell's base
    best: dict[str, Best] = {}
    for task in tasks:
        scored_cells = [c for c in cells if c["task"] == task and c["mean_micro_f1"] is not None]
        if not scored_cells:
            missing.append(f"{task}: no scored items, so no best cell")
            continue
        best[task] = _best(task, scored_cells, members)

    raw: dict[_CellKey, list[ItemResult]] = defaultdict(list)
    for item in kept:
        raw[item.task, item.model, item.strategy, item.k].append(item)
    pairs = _comparison_pairs(config, missing)
    comparisons = _comparisons(dict(raw), pairs, n_resamples, seed, missing)

    return Report(
        run=_plain(asdict(record)),
        settings={
            "statistic": "micro_f1",
            "confidence": CONFIDENCE,
            "n_resamples": n_resamples,
            "seed": seed,
            "comparisons": [list(pair) for pair in pairs],
            **({"closed_loop_samples_sha256": sorted(_release_hashes(looped))} if looped else {}),
        },
        tasks=tasks,
        cells=cells,
        best=best,
        comparisons=comparisons,
        totals=_totals(kept),
        baselines=baselines,
        closed_loop=_closed_loop(looped, n_resamples, seed, missing),
        missing=missing,
    )


def _release_hashes(items: Sequence[ItemResult]) -> set[str]:
    """The SHA-256 of the samples.jsonl each closed-loop outcome was computed from (one,
    unless the release changed while the run was resumed)."""
    return {
        str(i.outcome["samples_sha256"])
        for i in items
        if i.outcome and "samples_sha256" in i.outcome
    }


def _arm(item: ItemResult) -> tuple[tuple[int, str, tuple[int, str], int], str]:
    """A closed-loop item's arm: its sort key and its name."""
    if item.adapter == "baseline" and item.model in BASELINE_ARMS:
        return (0, "", (BASELINE_ARMS.index(item.model), ""), 0), item.model
    name = f"{item.model} k={item.k}"
    if item.strategy != NO_STRATEGY:
        name = f"{item.model} {_strategy_label(item.strategy)} k={item.k}"
    return (1, item.model, _strategy_rank(item.strategy), item.k), name


def _closed_loop(
    items: Sequence[ItemResult], n_resamples: int, seed: int, missing: list[str]
) -> list[dict[str, Any]]:
    """The closed-loop arms' summaries (see the module's docstring)."""
    if not items:
        return []
    arms: dict[str, tuple[Any, ItemResult]] = {}
    rows: list[dict[str, Any]] = []
    for item in items:
        order, name = _arm(item)
        arms.setdefault(name, (order, item))
        error = item.error
        if error is None and item.outcome is None:
            error = "no closed-loop outcome stored"
        rows.append(
            {
                **(item.outcome or {}),
                "id": item.sample_id,
                "arm": name,
                "error": error,
                "recommend_s": item.latency_s,
            }
        )
    ordered = sorted(arms, key=lambda name: arms[name][0])
    summary = summarize(rows, ordered, n_resamples=n_resamples, seed=seed)
    for name in ordered:
        if summary[name]["n"] == 0:
            missing.append(
                f"closed_loop {name}: no scored items ({summary[name]['errors']} failed)"
            )
    return [
        {
            "arm": name,
            "model": arms[name][1].model,
            "strategy": arms[name][1].strategy,
            "k": arms[name][1].k,
            **summary[name],
        }
        for name in ordered
    ]


# --------------------------------------------------------------------------- rendering


def _strategy_label(strategy: str) -> str:
    return "no examples" if strategy == NO_STRATEGY else strategy.upper()


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mean_std(cell: Cell) -> str:
    if cell["mean_micro_f1"] is None:
        return "—"
    scored_seeds = sum(entry["micro_f1"] is not None for entry in cell["per_seed"])
    if scored_seeds < 2:
        return _f(cell["mean_micro_f1"])
    return f"{_f(cell['mean_micro_f1'])} ± {_f(cell['std_micro_f1'])}"


def _pooled(cell: Cell) -> str:
    if cell["micro_f1"] is None:
        return "—"
    return f"{_f(cell['micro_f1'])} [{_f(cell['ci_low'])}, {_f(cell['ci_high'])}]"


def _rows(cells: Sequence[Cell]) -> tuple[list[tuple[str, str]], list[int]]:
    """(model, strategy) rows in report order and the sorted k columns."""
    rows = list(dict.fromkeys((cell["model"], cell["strategy"]) for cell in cells))
    return rows, sorted({cell["k"] for cell in cells})


def _is_best(report: Report, cell: Cell) -> bool:
    best = report.best.get(cell["task"])
    return best is not None and (best["model"], best["strategy"], best["k"]) == (
        cell["model"],
        cell["strategy"],
        cell["k"],
    )


def _baseline_rows(report: Report, task: str, ks: Sequence[int], ci: bool) -> list[list[str]]:
    """The baselines of a task as matrix rows: the same value under every k."""
    out: list[list[str]] = []
    for b in (b for b in report.baselines if b["task"] == task):
        text = _f(b["micro_f1"])
        if ci:
            text += f" [{_f(b['ci_low'])}, {_f(b['ci_high'])}]"
        out.append([bl.label(b["name"]), "baseline", *[text] * len(ks)])
    return out


def _marked(text: str, cell: Cell | None) -> str:
    return f"{text} {bl.MARK}" if cell is not None and bl.marked(cell) and text else text


def render_tables(report: Report) -> list[Table]:
    """One console table per task: mean ± std over seeds of micro-F1, rows model ×
    strategy, columns k, the best cell in bold, the baselines below the models and
    :data:`~gateway.bench.baselines.MARK` on cells that do not clear the best constant."""
    tables: list[Table] = []
    for task in report.tasks:
        cells = report.task_cells(task)
        rows, ks = _rows(cells)
        table = Table(title=f"{task}: micro-F1, mean ± std over seeds", caption=bl.LEGEND)
        table.add_column("model")
        table.add_column("strategy")
        for k in ks:
            table.add_column(f"k={k}", justify="right")
        lookup = {(c["model"], c["strategy"], c["k"]): c for c in cells}
        for model, strategy in rows:
            values: list[str] = []
            for k in ks:
                cell = lookup.get((model, strategy, k))
                text = "" if cell is None else _mean_std(cell)
                if cell is not None and _is_best(report, cell):
                    text = f"[bold]{text}[/bold]"
                values.append(_marked(text, cell))
            table.add_row(model, _strategy_label(strategy), *values)
        for row in _baseline_rows(report, task, ks, ci=False):
            table.add_row(*row, style="dim")
        tables.append(table)
    if report.closed_loop:
        tables.append(_closed_loop_table(report))
    return tables


def _closed_loop_table(report: Report) -> Table:
    table = Table(title="closed loop: fix rate [95 % CI], paired Δ vs none and vs oracle")
    for name in ("arm", "n", "errors", "fix rate", "median gain", "Δ none", "Δ oracle"):
        table.add_column(name, justify="left" if name == "arm" else "right")
    for arm in report.closed_loop:
        ci = arm["fix_rate_ci"]
        rate = "–" if ci is None else f"{arm['fix_rate']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
        deltas = [
            "–" if arm[vs] is None else f"{arm[vs]['delta']:+.2f} (p={arm[vs]['p_value']:.3f})"
            for vs in ("vs_none", "vs_oracle")
        ]
        table.add_row(
            arm["arm"],
            str(arm["n"]),
            str(arm["errors"]),
            rate,
            _f(arm["median_gain"], 2),
            *deltas,
            style="dim" if arm["arm"] in BASELINE_ARMS else None,
        )
    return table


def _md_text(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_text(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_text(v) for v in row) + " |" for row in rows]
    return lines


def _md_matrix(report: Report, task: str, render: Any, ci: bool | None = None) -> list[str]:
    """Rows model × strategy, columns k; with ``ci`` not None, the baselines below (their
    intervals too when ``ci``)."""
    cells = report.task_cells(task)
    rows, ks = _rows(cells)
    lookup = {(c["model"], c["strategy"], c["k"]): c for c in cells}
    body: list[list[str]] = []
    for model, strategy in rows:
        values: list[str] = [model, _strategy_label(strategy)]
        for k in ks:
            cell = lookup.get((model, strategy, k))
            text = "" if cell is None else str(render(cell))
            if cell is not None and _is_best(report, cell) and text != "—":
                text = f"**{text}**"
            values.append(_marked(text, cell))
        body.append(values)
    if ci is not None:
        body += _baseline_rows(report, task, ks, ci)
    return _md_table(["model", "strategy", *[f"k={k}" for k in ks]], body)


def _run_header(report: Report) -> list[str]:
    run = report.run
    lines = [f"# Benchmark report: {_md_text(run.get('name', ''))}", ""]
    fields_ = (
        "run_id",
        "name",
        "config_hash",
        "git_revision",
        "dataset",
        "split",
        "started_at",
        "finished_at",
        "gateway_url",
    )
    lines += _md_table(
        ["run", ""], [(name, "—" if run.get(name) is None else run[name]) for name in fields_]
    )
    lines += ["", "Configuration:", "", "```json"]
    lines += json.dumps(run.get("config", {}), indent=2, sort_keys=True).splitlines()
    lines += ["```", ""]
    if run.get("extra"):
        lines += ["Extra:", "", "```json"]
        lines += json.dumps(run["extra"], indent=2, sort_keys=True).splitlines()
        lines += ["```", ""]
    return lines


def _explanation(report: Report) -> list[str]:
    settings = report.settings
    return [
        "## What the numbers are",
        "",
        "Micro-F1 of multi-label answers over the task's fixed vocabulary (12 artifact "
        "labels for detection, 24 option letters for recommendation). *Mean ± std* is "
        "the mean and the population standard deviation over seeds of each seed's "
        "micro-F1 (a value without ± comes from one seed); *pooled* scores every seed's "
        f"answers together, with a {settings['confidence']:.0%} percentile bootstrap "
        f"interval from {settings['n_resamples']} resamples of those items (seed "
        f"{settings['seed']}). Failed requests are left out of every score and counted as "
        "errors; answers with unreadable fragments are scored on what could be read and "
        "counted as parse failures. k = 0 answers take no examples and fill the k = 0 "
        "column of every strategy. The best cell of each task (highest mean) is in bold.",
        "",
        bl.explanation(),
        "",
    ]


def _task_section(report: Report, task: str) -> list[str]:
    cells = report.task_cells(task)
    lines = [f"## {task.capitalize()}", ""]
    lines += [f"### Micro-F1, mean ± std over seeds ({task})", ""]
    lines += [*_md_matrix(report, task, _mean_std, ci=False), ""]
    lines += [f"### Pooled micro-F1 [{report.settings['confidence']:.0%} CI] ({task})", ""]
    lines += [*_md_matrix(report, task, _pooled, ci=True), "", bl.LEGEND + ".", ""]
    lines += _baseline_section(report, task)
    if any(c["parity_micro_f1"] is not None for c in report.task_cells(task)):
        lines += [f"### Pooled micro-F1 as the published code scored it ({task})", ""]
        lines += [*_md_matrix(report, task, lambda c: _f(c["parity_micro_f1"])), ""]
    lines += [f"### Every cell ({task})", ""]
    lines += _md_table(
        [
            "model",
            "strategy",
            "k",
            "items",
            "scored",
            "seeds",
            "mean ± std",
            "pooled [CI]",
            "macro-F1",
            "parse failures",
            "errors",
            "latency (s)",
        ],
        [
            (
                c["model"],
                _strategy_label(c["strategy"]),
                c["k"],
                c["n_items"],
                c["n_scored"],
                c["n_seeds"],
                _mean_std(c),
                _marked(_pooled(c), c),
                _f(c["macro_f1"]),
                c["parse_failures"],
                c["errors"],
                _f(c["mean_latency_s"], 2),
            )
            for c in cells
        ],
    )
    lines.append("")
    best = report.best.get(task)
    if best is None:
        lines += ["No scored items, so no best cell.", ""]
        return lines
    where = f"{best['model']} {_strategy_label(best['strategy'])} k={best['k']}"
    ties = f" (tied with {', '.join(best['ties'])})" if best["ties"] else ""
    weak = best["clears_constant"] is False
    lines += [
        f"### Highest-scoring cell: {_md_text(where)} {bl.MARK}"
        if weak
        else f"### Best cell: {_md_text(where)}",
        "",
        f"Mean micro-F1 {_f(best['mean_micro_f1'])} ± {_f(best['std_micro_f1'])} over "
        f"{best['n_seeds']} seed(s), pooled {_f(best['micro_f1'])}{_md_text(ties)}. "
        + (
            "It does not clear the best constant answer, so no model of this task has "
            "shown that it works here. "
            if weak
            else ""
        )
        + "Per-class and per-sample-type scores pool its seeds' answers.",
        "",
        "Per class:",
        "",
    ]
    lines += _md_table(
        ["label", "precision", "recall", "F1", "support"],
        [
            (c["label"], _f(c["precision"]), _f(c["recall"]), _f(c["f1"]), c["support"])
            for c in best["per_class"]
        ],
    )
    lines += ["", "Per sample type (micro):", ""]
    lines += _md_table(
        ["sample type", "items", "precision", "recall", "F1", "support"],
        [
            (
                t["sample_type"],
                t["n_items"],
                _f(t["precision"]),
                _f(t["recall"]),
                _f(t["f1"]),
                t["support"],
            )
            for t in best["per_sample_type"]
        ],
    )
    lines.append("")
    return lines


def _baseline_section(report: Report, task: str) -> list[str]:
    found = [b for b in report.baselines if b["task"] == task]
    if not found:
        return []
    lines = [f"### Baselines ({task}, split {_md_text(found[0]['split'])})", ""]
    lines += [*_md_table(bl.BASELINE_HEADER, bl.baseline_rows(found)), ""]
    lines += [f"### Against the best constant ({task})", "", bl.VS_TEXT, ""]
    rows = bl.vs_constant_rows(report.task_cells(task), _strategy_label)
    return [*lines, *_md_table(bl.VS_HEADER, rows), ""]


def _comparison_section(report: Report) -> list[str]:
    lines = [
        "## Paired comparisons",
        "",
        "Pooled micro-F1 of A minus B on the same items (matched by sample and seed, "
        "items failed on either side left out), by a paired bootstrap; p is two-sided "
        "for no difference.",
        "",
    ]
    if not report.comparisons:
        return [*lines, "None: no pair of configurations answered the same items.", ""]

    def numbers(c: Comparison, *head: str) -> list[object]:
        return [
            c["task"],
            *head,
            c["k"],
            c["n_items"],
            _f(c["a_micro_f1"]),
            _f(c["b_micro_f1"]),
            f"{c['diff']:+.3f}",
            f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]",
            f"{c['p_value']:.4f}",
        ]

    tail = ["n", "F1 A", "F1 B", "A − B", "CI", "p"]

    def mark(c: Comparison, side: str, text: str) -> str:
        """``text``, marked when side a's or b's cell does not clear the best constant."""
        model, strategy = (
            (c["a_model"], c["a_strategy"]) if side == "a" else (c["b_model"], c["b_strategy"])
        )
        cells = report.task_cells(c["task"])
        found = [
            x
            for x in cells
            if (x["model"], x["k"]) == (model, c["k"])
            and strategy in (x["strategy"], *x["sources"])
        ]
        return _marked(text, found[0] if found else None)

    models = [c for c in report.comparisons if c["kind"] == "models"]
    strategies = [c for c in report.comparisons if c["kind"] == "strategies"]
    if models:
        lines += ["### Models", ""]
        lines += _md_table(
            ["task", "A", "B", "strategy", "k", *tail],
            [
                numbers(
                    c,
                    mark(c, "a", c["a_model"]),
                    mark(c, "b", c["b_model"]),
                    _strategy_label(c["a_strategy"]),
                )
                for c in models
            ],
        )
        lines.append("")
    if strategies:
        lines += ["### SSFS vs RFS", ""]
        lines += _md_table(
            ["task", "model", "A", "B", "k", *tail],
            [
                numbers(
                    c,
                    c["a_model"],
                    mark(c, "a", c["a_strategy"].upper()),
                    mark(c, "b", c["b_strategy"].upper()),
                )
                for c in strategies
            ],
        )
        lines.append("")
    return lines


def _closed_loop_section(report: Report) -> list[str]:
    if not report.closed_loop:
        return []
    table = render_table({arm["arm"]: arm for arm in report.closed_loop})
    return [
        "## Closed loop",
        "",
        "Each arm's letters applied to the faulted simulated sample and reconstructed; "
        "*fixed* when they closed at least the simulator's share of the NRMSE gap to the "
        "clean reconstruction. Fix rate with a "
        f"{report.settings['confidence']:.0%} bootstrap interval; Δ is the paired "
        "fix-rate difference on the same samples, with its interval and two-sided p. "
        "Failed requests are errors, left out of the rates. The samples' records "
        "(samples.jsonl) had SHA-256 "
        + ", ".join(report.settings.get("closed_loop_samples_sha256", []))
        + ".",
        "",
        *table.splitlines(),
        "",
    ]


def _failures_section(report: Report) -> list[str]:
    lines = [
        "## Parse failures and errors",
        "",
        "Items as sent (k = 0 answers counted once).",
        "",
    ]
    if not report.totals:
        return [*lines, "No items.", ""]
    lines += _md_table(
        ["task", "model", "items", "parse failures", "errors"],
        [
            (t["task"], t["model"], t["n_items"], t["parse_failures"], t["errors"])
            for t in report.totals
        ],
    )
    lines.append("")
    messages = [
        (t["task"], t["model"], m["count"], m["message"])
        for t in report.totals
        for m in t["error_messages"]
    ]
    if messages:
        lines += ["Errors:", ""]
        lines += _md_table(["task", "model", "count", "message"], messages)
        lines.append("")
    return lines


def render_markdown(report: Report) -> str:
    """The report as Markdown (what ``report.md`` holds)."""
    lines = _run_header(report) + _explanation(report)
    for task in report.tasks:
        lines += _task_section(report, task)
    lines += _closed_loop_section(report)
    lines += _comparison_section(report) + _failures_section(report)
    lines += ["## Missing", ""]
    lines += [f"- {_md_text(note)}" for note in report.missing] or ["Nothing."]
    lines.append("")
    return "\n".join(lines)


CSV_COLUMNS: Final[tuple[str, ...]] = (
    "task",
    "model",
    "strategy",
    "k",
    "sources",
    "adapters",
    "n_items",
    "n_scored",
    "errors",
    "parse_failures",
    "n_seeds",
    "seeds",
    "mean_micro_f1",
    "std_micro_f1",
    "micro_f1",
    "ci_low",
    "ci_high",
    "micro_precision",
    "micro_recall",
    "macro_f1",
    "macro_f1_present",
    "mean_latency_s",
    "parity_micro_f1",
    "clears_constant",
    "minus_constant",
    "minus_constant_ci_low",
    "minus_constant_ci_high",
    "minus_constant_p",
)


def render_csv(report: Report) -> str:
    """One row per cell (what ``cells.csv`` holds); lists are space-separated, missing
    numbers empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for cell in report.cells:
        row: list[str] = []
        for column in CSV_COLUMNS:
            value = cell[column]  # type: ignore[literal-required]
            if value is None:
                row.append("")
            elif isinstance(value, list):
                row.append(" ".join(str(v) for v in value))
            else:
                row.append(str(value))
        writer.writerow(row)
    return out.getvalue()


def render_plot(report: Report) -> bytes:
    """Mean micro-F1 against k, one subplot per task, one line per model × strategy,
    error bars the std over seeds; one colour per model, one line style per strategy; a
    model that takes no examples is a dotted level, the baselines grey levels. PNG
    bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = report.tasks or ["(no tasks)"]
    figure = Figure(figsize=(5.5 * len(tasks), 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    styles = {"ssfs": "-", "rfs": "--", "semantic": ":"}
    models = sorted({cell["model"] for cell in report.cells})  # the same colour in every task
    for ax, task in zip(axes, tasks, strict=True):
        cells = [c for c in report.task_cells(task) if c["mean_micro_f1"] is not None]
        rows, ks = _rows(cells)
        for model, strategy in rows:
            color = f"C{models.index(model) % 10}"
            line = [c for c in cells if (c["model"], c["strategy"]) == (model, strategy)]
            xs = [c["k"] for c in line]
            ys = [float(c["mean_micro_f1"] or 0.0) for c in line]
            errors = [float(c["std_micro_f1"] or 0.0) for c in line]
            if strategy == NO_STRATEGY and len(set(ks)) > 1:
                ax.axhline(
                    ys[0], color=color, linestyle=":", linewidth=1.2, label=f"{model} (no examples)"
                )
            else:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=errors,
                    color=color,
                    linestyle=styles.get(strategy, "-."),
                    marker="o",
                    capsize=3,
                    label=f"{model} {_strategy_label(strategy)}",
                )
        for b, style in zip(
            (b for b in report.baselines if b["task"] == task), ("--", "-."), strict=False
        ):
            ax.axhline(
                b["micro_f1"],
                color="0.4",
                linestyle=style,
                linewidth=1.0,
                label=bl.label(b["name"]),
            )
        ax.set_title(task)
        ax.set_xlabel("k (examples)")
        ax.set_ylabel("micro-F1 (mean ± std over seeds)")
        ax.set_ylim(0.0, 1.0)
        if ks:
            ax.set_xticks(ks)
            ax.legend(fontsize="small", loc="best")
        else:
            ax.text(0.5, 0.5, "no scored items", ha="center", va="center", transform=ax.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``cells.csv``, ``report.json``, ``f1_vs_k.png`` and
    ``baselines.csv`` into ``out_dir`` (made if need be), each atomically; returns their
    paths by the keys of :data:`FILES`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "md": render_markdown(report).encode(),
        "csv": render_csv(report).encode(),
        "json": report.to_json().encode(),
        "png": render_plot(report),
        "baselines": bl.render_csv(report.baselines).encode(),
    }
    paths: dict[str, Path] = {}
    for key, data in contents.items():
        path = out_dir / FILES[key]
        _write_atomic(path, data)
        paths[key] = path
    return paths


__all__ = [
    "CSV_COLUMNS",
    "FILES",
    "Best",
    "Cell",
    "Comparison",
    "Report",
    "build_report",
    "render_csv",
    "render_markdown",
    "render_plot",
    "render_tables",
    "write_report",
]
