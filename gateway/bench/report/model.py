"""What a benchmark report holds: its cells, best cells, comparisons, totals and the
:class:`Report` that gathers them (plain JSON-ready data), and the names the report's
modules share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from gateway.bench import baselines as bl
from gateway.bench.records import ItemResult
from ptychobench.metrics import BoolMatrix
from ptychobench.report.stats import ClassScore, label_matrices
from ptychobench.report.tables import NO_STRATEGY, STRATEGY_ORDER

CONFIDENCE: Final = 0.95
DEFAULT_COMPARISONS: Final[tuple[tuple[str, str], ...]] = (("sft", "base"),)
FILES: Final[dict[str, str]] = {
    "md": "report.md",
    "csv": "cells.csv",
    "json": "report.json",
    "png": "f1_vs_k.png",
    "baselines": "baselines.csv",
}
"""What :func:`~gateway.bench.report.files.write_report` writes: key of the returned
mapping → file name."""
MAX_ERROR_TEXT: Final = 200

CellKey = tuple[str, str, str, int]  # task, model, strategy, k


def cell_name(key: CellKey) -> str:
    task, model, strategy, k = key
    return f"{task} {model} {strategy} k={k}"


def matrices(
    items: Sequence[ItemResult], vocab: Sequence[str], where: str
) -> tuple[BoolMatrix, BoolMatrix]:
    """The items' truths and answers as label matrices (``where`` prefixes an error)."""
    return label_matrices(
        [item.truth for item in items], [item.predicted for item in items], vocab, where
    )


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


__all__ = [
    "CONFIDENCE",
    "DEFAULT_COMPARISONS",
    "FILES",
    "MAX_ERROR_TEXT",
    "NO_STRATEGY",
    "STRATEGY_ORDER",
    "Best",
    "Cell",
    "CellKey",
    "ClassScore",
    "Comparison",
    "ErrorCount",
    "Report",
    "SampleTypeScore",
    "SeedScore",
    "Totals",
    "cell_name",
    "matrices",
]
