"""The numbers of a report: answers as label matrices, pooled scores with a bootstrap
interval of micro-F1, and the mean and population standard deviation over seeds (NumPy's
default, as published)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from ptychobench.bootstrap import BootstrapResult, bootstrap
from ptychobench.metrics import PRF, BoolMatrix, LabelSets, Scores, binarize, score


def label_matrices(
    truths: LabelSets, predictions: LabelSets, vocab: Sequence[str], where: str = ""
) -> tuple[BoolMatrix, BoolMatrix]:
    """The true and predicted answers as boolean matrices over ``vocab``; a label outside
    it raises ``ValueError``, prefixed with ``where`` when given."""
    try:
        return binarize(truths, vocab), binarize(predictions, vocab)
    except ValueError as error:
        if not where:
            raise
        raise ValueError(f"{where}: {error}") from None


@dataclass(frozen=True)
class Pooled:
    """Scores of answers pooled together, and the bootstrap interval of their micro-F1."""

    scores: Scores
    micro_f1: BootstrapResult


def pooled(
    y_true: BoolMatrix,
    y_pred: BoolMatrix,
    vocab: Sequence[str],
    sample_types: Sequence[str] | None = None,
    *,
    n_resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> Pooled:
    """:func:`~ptychobench.metrics.score` of the matrices and the percentile bootstrap
    of their micro-F1 (:func:`~ptychobench.bootstrap.bootstrap`)."""
    return Pooled(
        scores=score(y_true, y_pred, vocab, sample_types),
        micro_f1=bootstrap(y_true, y_pred, "micro_f1", n_resamples, seed, confidence),
    )


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None for no values."""
    return float(np.mean(values)) if values else None


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and population standard deviation, or (None, None) for no values."""
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


__all__ = ["Pooled", "label_matrices", "mean", "mean_std", "pooled"]


class ClassScore(TypedDict):
    """One label's row of a per-class table."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


def class_scores(per_class: Mapping[str, PRF]) -> list[ClassScore]:
    """Per-class scores (:attr:`Scores.per_class`) as table rows, in the same order."""
    return [
        ClassScore(
            label=label,
            precision=prf.precision,
            recall=prf.recall,
            f1=prf.f1,
            support=prf.support,
        )
        for label, prf in per_class.items()
    ]
