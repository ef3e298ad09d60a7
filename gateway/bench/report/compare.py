"""Paired comparisons of a run (see the package's docstring): pooled micro-F1 of A
minus B by a paired bootstrap over the items both answered, models against models
(``config["comparisons"]``) and SSFS against RFS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gateway.bench.records import ItemResult
from gateway.bench.report.model import (
    CONFIDENCE,
    DEFAULT_COMPARISONS,
    CellKey,
    Comparison,
    matrices,
)
from ptychobench.bootstrap import paired_bootstrap
from ptychobench.labels import vocabulary
from ptychobench.report.tables import strategy_rank


def comparison_pairs(config: dict[str, Any], missing: list[str]) -> list[tuple[str, str]]:
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
    truth_a, pred_a = matrices([by_a[key] for key in keys], vocab, name)
    truth_b, pred_b = matrices([by_b[key] for key in keys], vocab, name)
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


def paired_comparisons(
    raw: dict[CellKey, list[ItemResult]],
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
            key=lambda g: (g[1], strategy_rank(g[0])),
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
            strategy_rank(c["a_strategy"]),
            strategy_rank(c["b_strategy"]),
        )
    )
    return out


__all__ = ["comparison_pairs", "paired_comparisons"]
