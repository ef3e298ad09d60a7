"""Items of a run → :class:`~gateway.bench.report.model.Report`: cells, best cells,
baselines, totals, comparisons and the closed-loop arms (what each number is: the
package's docstring). Reads and writes nothing."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gateway.bench import baselines as bl
from gateway.bench.config import CLOSED_LOOP
from gateway.bench.records import ItemResult, RunRecord
from gateway.bench.report.compare import comparison_pairs, paired_comparisons
from gateway.bench.report.model import (
    CONFIDENCE,
    MAX_ERROR_TEXT,
    Best,
    Cell,
    CellKey,
    ErrorCount,
    Report,
    SampleTypeScore,
    SeedScore,
    Totals,
    cell_name,
    matrices,
)
from ptychobench.closed_loop import BASELINE_ARMS, summarize
from ptychobench.labels import Task, vocabulary
from ptychobench.metrics import parity_score, score
from ptychobench.prompts import format_answer
from ptychobench.report.stats import class_scores, mean, mean_std, pooled
from ptychobench.report.tables import NO_STRATEGY, strategy_label, strategy_rank

if TYPE_CHECKING:
    from ptychobench.data import Dataset


def _cell_sort_key(key: CellKey) -> tuple[str, str, tuple[int, str], int]:
    task, model, strategy, k = key
    return task, model, strategy_rank(strategy), k


def _item_order(item: ItemResult) -> tuple[int, str, str]:
    return item.seed, item.sample_id, item.strategy


def _plain(value: Any) -> Any:
    """A JSON round trip: tuples become lists, anything exotic its string."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


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


def _expand(
    items: Sequence[ItemResult],
) -> dict[CellKey, list[ItemResult]]:
    """Items by cell, "none" items copied into every strategy of their task."""
    strategies: dict[str, set[str]] = defaultdict(set)
    model_strategies: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in items:
        model_strategies[item.task, item.model].add(item.strategy)
        if item.strategy != NO_STRATEGY:
            strategies[item.task].add(item.strategy)
    cells: dict[CellKey, list[ItemResult]] = defaultdict(list)
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
                f"{cell_name(key)}: sample {sample!r} at seed {seed} was answered both "
                "without examples (strategy 'none') and with this strategy"
            )
    return cells


def _cell(
    key: CellKey,
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
            truth, pred = matrices(answered, vocab, f"{cell_name(key)} seed {s}")
            f1 = score(truth, pred, vocab).micro.f1
        elif scored:
            missing.append(f"{cell_name(key)} seed {s}: no scored items (all failed)")
        per_seed.append(
            SeedScore(seed=s, n_items=len(at_seed), n_scored=len(answered), micro_f1=f1)
        )
    f1s = [entry["micro_f1"] for entry in per_seed if entry["micro_f1"] is not None]
    mean_f1, std_f1 = mean_std(f1s)
    cell = Cell(
        task=task,
        model=model,
        strategy=strategy,
        k=k,
        sources=sorted({item.strategy for item in members}, key=strategy_rank),
        adapters=sorted({item.adapter for item in members}),
        n_items=len(members),
        n_scored=len(scored),
        errors=len(members) - len(scored),
        parse_failures=sum(item.parse_failure for item in scored),
        n_seeds=len(seeds),
        seeds=seeds,
        per_seed=per_seed,
        mean_micro_f1=mean_f1,
        std_micro_f1=std_f1,
        micro_f1=None,
        ci_low=None,
        ci_high=None,
        micro_precision=None,
        micro_recall=None,
        macro_f1=None,
        macro_f1_present=None,
        mean_latency_s=mean([item.latency_s for item in scored]),
        parity_micro_f1=None,
        clears_constant=None,
        minus_constant=None,
        minus_constant_ci_low=None,
        minus_constant_ci_high=None,
        minus_constant_p=None,
    )
    if not scored:
        missing.append(f"{cell_name(key)}: no scored items ({cell['errors']} failed)")
        return cell
    truth, pred = matrices(scored, vocab, cell_name(key))
    found = pooled(truth, pred, vocab, n_resamples=n_resamples, seed=seed, confidence=CONFIDENCE)
    scores, interval = found.scores, found.micro_f1
    cell["micro_f1"] = scores.micro.f1
    cell["ci_low"], cell["ci_high"] = interval.ci_low, interval.ci_high
    cell["micro_precision"] = scores.micro.precision
    cell["micro_recall"] = scores.micro.recall
    cell["macro_f1"] = scores.macro.f1
    cell["macro_f1_present"] = scores.macro_over_present.f1
    if parity:
        cell["parity_micro_f1"] = parity_score(
            [format_answer(item.truth, task) for item in scored],
            [item.raw_answer for item in scored],
            require_brackets=task == "detection",
        ).micro.f1
    return cell


def _best(task: str, cells: Sequence[Cell], members: dict[CellKey, list[ItemResult]]) -> Best:
    top = max(cell["mean_micro_f1"] or 0.0 for cell in cells)
    winners = [cell for cell in cells if cell["mean_micro_f1"] == top]
    chosen = winners[0]
    key: CellKey = (task, chosen["model"], chosen["strategy"], chosen["k"])
    vocab = vocabulary(task)
    scored = [item for item in members[key] if item.error is None]
    truth, pred = matrices(scored, vocab, cell_name(key))
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
        per_class=class_scores(scores.per_class),
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


def _totals(items: Sequence[ItemResult]) -> list[Totals]:
    groups: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
    for item in items:
        groups[item.task, item.model].append(item)
    out: list[Totals] = []
    for (task, model), members in sorted(groups.items()):
        messages = Counter(
            " ".join(item.error.split())[:MAX_ERROR_TEXT]
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

    raw: dict[CellKey, list[ItemResult]] = defaultdict(list)
    for item in kept:
        raw[item.task, item.model, item.strategy, item.k].append(item)
    pairs = comparison_pairs(config, missing)
    found_comparisons = paired_comparisons(dict(raw), pairs, n_resamples, seed, missing)

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
        comparisons=found_comparisons,
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
        name = f"{item.model} {strategy_label(item.strategy)} k={item.k}"
    return (1, item.model, strategy_rank(item.strategy), item.k), name


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


__all__ = ["build_report"]
