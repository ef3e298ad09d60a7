"""Bootstrap confidence intervals over test items, vectorised.

The published script resampled the test set in a Python loop and called sklearn once per
resample (10,000 calls per table cell). Here each item's true-positive, false-positive and
false-negative counts are computed once, an (n, 3C) matrix; a resample is a vector of
multiplicities (how often each item was drawn), so the totals of a chunk of b resamples
are one matrix product (b, n) @ (n, 3C), and every statistic follows from totals.
Chunking over resamples bounds memory at about ``_CHUNK_ELEMENTS`` multiplicities.

How resamples are drawn: a chunk of b resamples is ``rng.integers(0, n, size=(b, n))``
from ``numpy.random.default_rng(seed)``. NumPy's Generator fills that array from the same
stream as b successive ``rng.integers(0, n, size=n)`` calls, so the per-resample
reference `bootstrap_loop` sees exactly the same resamples for the same seed, whatever the
chunk size, and a test holds the two to identical distributions.

Intervals are percentile intervals (as published); ``std`` is the population standard
deviation of the resampled scores (NumPy's default, as published).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from ptychobench.metrics import (
    Answers,
    FloatArray,
    Scores,
    confusion_counts,
    label_matrix,
    prf_arrays,
    score,
)

Statistic: TypeAlias = Literal["micro_f1", "macro_f1", "micro_precision", "micro_recall"]
STATISTICS: Final[tuple[str, ...]] = get_args(Statistic)

_CHUNK_ELEMENTS: Final = 1 << 20
"""Multiplicities per chunk (b * n); 8 MiB of float64 plus as much for the indices."""


def _as_dict(result: Any) -> dict[str, Any]:
    """A result's fields as a JSON-ready mapping, without the bootstrap distribution."""
    return {f.name: getattr(result, f.name) for f in fields(result) if f.name != "distribution"}


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic on the test set and its bootstrap distribution's summary."""

    statistic: str
    point: float
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    n_items: int
    seed: int
    distribution: FloatArray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (without the distribution)."""
        return _as_dict(self)


@dataclass(frozen=True)
class PairedBootstrapResult:
    """System A minus system B on the same resamples of the same test items.

    ``p_value`` is two-sided for "no difference", read off the bootstrap distribution of
    the difference: ``min(1, 2 * min(P(d* <= 0), P(d* >= 0)))`` with each proportion
    counted as ``(count + 1) / (B + 1)`` so it is never 0 from a finite number of
    resamples. It is the smallest two-sided level at which the percentile interval would
    exclude 0, so it agrees with the interval: a 95 % interval that excludes 0 goes with
    p < 0.05 (up to the interpolation of the percentiles). A system compared with itself
    gets all-zero differences and p = 1.
    """

    statistic: str
    point_a: float
    point_b: float
    point_diff: float
    mean: float
    std: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    n_resamples: int
    n_items: int
    seed: int
    distribution: FloatArray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (without the distribution)."""
        return _as_dict(self)


def _check(statistic: str, n_resamples: int, confidence: float) -> None:
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose from {list(STATISTICS)}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _counts(y_true: Answers, y_pred: Answers, vocab: Sequence[str] | None) -> FloatArray:
    """Per-item counts (n, 3, C) as float64 (exact for any realistic total)."""
    counts = confusion_counts(label_matrix(y_true, vocab), label_matrix(y_pred, vocab))
    if counts.shape[0] == 0:
        raise ValueError("cannot bootstrap zero items")
    return counts.astype(np.float64)


def statistic_from_totals(totals: FloatArray, statistic: str) -> FloatArray:
    """The statistic of each row of resampled totals, shape (b, 3, C) -> (b,).

    Same definitions as `ptychobench.metrics.score` (fixed vocabulary, zero_division=0).
    """
    if statistic == "macro_f1":
        _, _, f1 = prf_arrays(totals[:, 0], totals[:, 1], totals[:, 2])
        if f1.shape[1] == 0:
            return np.zeros(f1.shape[0])
        means: FloatArray = f1.mean(axis=1)
        return means
    tp, fp, fn = totals.sum(axis=2).T
    precision, recall, f1 = prf_arrays(tp, fp, fn)
    return {"micro_f1": f1, "micro_precision": precision, "micro_recall": recall}[statistic]


def _distributions(
    blocks: Sequence[FloatArray],
    statistic: str,
    n_resamples: int,
    seed: int,
    chunk_size: int | None,
) -> list[FloatArray]:
    """Bootstrap distribution of the statistic for each (n, 3, C) block, all blocks on
    the same resamples."""
    n = blocks[0].shape[0]
    widths = [block.shape[1] * block.shape[2] for block in blocks]
    stacked = np.concatenate([block.reshape(n, -1) for block in blocks], axis=1)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // n)
    rng = np.random.default_rng(seed)
    out = [np.empty(n_resamples) for _ in blocks]
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        indices = rng.integers(0, n, size=(b, n))
        flat = (indices + n * np.arange(b)[:, None]).ravel()
        weights = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        totals = weights @ stacked
        offset = 0
        for target, block, width in zip(out, blocks, widths, strict=True):
            part = totals[:, offset : offset + width].reshape(b, *block.shape[1:])
            target[start : start + b] = statistic_from_totals(part, statistic)
            offset += width
    return out


def _point(block: FloatArray, statistic: str) -> float:
    return float(statistic_from_totals(block.sum(axis=0)[None], statistic)[0])


def _interval(distribution: FloatArray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.percentile(distribution, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _p_value(diff: FloatArray) -> float:
    """Two-sided p for "no difference" off a bootstrap distribution of A - B (see
    :class:`PairedBootstrapResult`)."""
    below = (np.count_nonzero(diff <= 0) + 1) / (diff.size + 1)
    above = (np.count_nonzero(diff >= 0) + 1) / (diff.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def _summary(
    statistic: str,
    point: float,
    distribution: FloatArray,
    confidence: float,
    n_items: int,
    seed: int,
) -> BootstrapResult:
    low, high = _interval(distribution, confidence)
    return BootstrapResult(
        statistic=statistic,
        point=point,
        mean=float(distribution.mean()),
        std=float(distribution.std()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        n_resamples=distribution.size,
        n_items=n_items,
        seed=seed,
        distribution=distribution,
    )


def _paired_summary(
    statistic: str,
    point_a: float,
    point_b: float,
    diff: FloatArray,
    confidence: float,
    n_items: int,
    seed: int,
) -> PairedBootstrapResult:
    low, high = _interval(diff, confidence)
    return PairedBootstrapResult(
        statistic=statistic,
        point_a=point_a,
        point_b=point_b,
        point_diff=point_a - point_b,
        mean=float(diff.mean()),
        std=float(diff.std()),
        ci_low=low,
        ci_high=high,
        p_value=_p_value(diff),
        confidence=confidence,
        n_resamples=diff.size,
        n_items=n_items,
        seed=seed,
        distribution=diff,
    )


def bootstrap(
    y_true: Answers,
    y_pred: Answers,
    statistic: Statistic = "micro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    vocab: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> BootstrapResult:
    """Percentile bootstrap interval of a statistic over resampled test items.

    ``y_true``/``y_pred`` are indicator matrices, or label sets together with ``vocab``.
    ``statistic`` is one of micro_f1, macro_f1 (over every vocabulary class),
    micro_precision, micro_recall.
    """
    _check(statistic, n_resamples, confidence)
    counts = _counts(y_true, y_pred, vocab)
    (distribution,) = _distributions([counts], statistic, n_resamples, seed, chunk_size)
    point = _point(counts, statistic)
    return _summary(statistic, point, distribution, confidence, counts.shape[0], seed)


def paired_bootstrap(
    y_true: Answers,
    y_pred_a: Answers,
    y_pred_b: Answers,
    statistic: Statistic = "micro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    vocab: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> PairedBootstrapResult:
    """Is system A better than system B on these test items? Both are scored on the same
    resamples, so item difficulty cancels out of the difference (A - B)."""
    _check(statistic, n_resamples, confidence)
    counts_a = _counts(y_true, y_pred_a, vocab)
    counts_b = _counts(y_true, y_pred_b, vocab)
    if counts_a.shape != counts_b.shape:
        raise ValueError(f"systems disagree in shape: {counts_a.shape} vs {counts_b.shape}")
    dist_a, dist_b = _distributions([counts_a, counts_b], statistic, n_resamples, seed, chunk_size)
    point_a, point_b = _point(counts_a, statistic), _point(counts_b, statistic)
    return _paired_summary(
        statistic, point_a, point_b, dist_a - dist_b, confidence, counts_a.shape[0], seed
    )


_PICK: Final[dict[str, Callable[[Scores], float]]] = {
    "micro_f1": lambda s: s.micro.f1,
    "macro_f1": lambda s: s.macro.f1,
    "micro_precision": lambda s: s.micro.precision,
    "micro_recall": lambda s: s.micro.recall,
}


def bootstrap_loop(
    y_true: Answers,
    y_pred: Answers,
    statistic: Statistic = "micro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    vocab: Sequence[str] | None = None,
) -> BootstrapResult:
    """Slow reference: one resample at a time, each scored by `ptychobench.metrics.score`
    (the published script's shape, with a seeded Generator). Same resamples and the same
    result as `bootstrap` for the same seed; kept for the benchmark and the tests."""
    _check(statistic, n_resamples, confidence)
    truth = label_matrix(y_true, vocab)
    pred = label_matrix(y_pred, vocab)
    n, n_classes = truth.shape
    if n == 0:
        raise ValueError("cannot bootstrap zero items")
    names = tuple(vocab) if vocab is not None else tuple(str(j) for j in range(n_classes))
    pick = _PICK[statistic]
    rng = np.random.default_rng(seed)
    distribution: npt.NDArray[np.float64] = np.empty(n_resamples)
    for b in range(n_resamples):
        rows = rng.integers(0, n, size=n)
        distribution[b] = pick(score(truth[rows], pred[rows], names))
    point = pick(score(truth, pred, names))
    return _summary(statistic, point, distribution, confidence, n, seed)


def _means(values: npt.ArrayLike, n_resamples: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """The values as floats and their means over ``n_resamples`` resamples (drawn as for
    the F1 statistics: ``rng.integers(0, n, size=(b, n))``, chunked)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("cannot bootstrap zero items")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // data.size)
    out: FloatArray = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        out[start : start + b] = data[rng.integers(0, data.size, size=(b, data.size))].mean(1)
    return data, out


def bootstrap_mean(
    values: npt.ArrayLike, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Percentile bootstrap interval of a mean over items (a rate, when the values are
    0 and 1: the closed loop's fix rate)."""
    data, distribution = _means(values, n_resamples, seed)
    return _summary("mean", float(data.mean()), distribution, confidence, data.size, seed)


def paired_bootstrap_mean(
    values_a: npt.ArrayLike,
    values_b: npt.ArrayLike,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedBootstrapResult:
    """Mean of A minus mean of B over the same items, resampled together (item i of A
    goes with item i of B); the p-value is read off as in :func:`paired_bootstrap`."""
    a = np.asarray(values_a, dtype=float)
    b = np.asarray(values_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"systems disagree in shape: {a.shape} vs {b.shape}")
    _, diff = _means(a - b, n_resamples, seed)
    return _paired_summary("mean", float(a.mean()), float(b.mean()), diff, confidence, a.size, seed)
