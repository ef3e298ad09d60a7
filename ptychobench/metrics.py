"""Precision, recall and F1 of multi-label answers over a fixed vocabulary.

Every answer becomes a row of a boolean matrix whose columns are the task's vocabulary
(12 artifact labels, or the 24 option letters). Scoring over a *fixed* vocabulary makes
macro-F1 comparable between runs: a class nobody predicted and nobody holds still
counts, as 0, exactly as ``sklearn.metrics.f1_score(..., labels=vocab, average="macro",
zero_division=0)`` counts it. The null label ("No obvious artifacts", "L") is an
ordinary class here, so a correct "nothing to report" is a true positive.

The published PtychoBench code scored differently: its label set is whatever occurs in
the truths and predictions (junk strings included) and "No obvious artifacts" is
dropped. `parity_score` reproduces that, so published numbers can be checked.

All ratios follow sklearn's ``zero_division=0``: a ratio with a zero denominator is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

BoolMatrix: TypeAlias = npt.NDArray[np.bool_]
"""(n items, C classes) label-indicator matrix."""
FloatArray: TypeAlias = npt.NDArray[np.float64]
LabelSets: TypeAlias = Sequence[Iterable[str]]
"""One iterable of labels per item."""
Answers: TypeAlias = LabelSets | npt.NDArray[Any]
"""Label sets, or an indicator matrix whose columns follow the vocabulary."""


def binarize(label_sets: LabelSets, vocab: Sequence[str]) -> BoolMatrix:
    """Indicator matrix (n, C): ``out[i, j]`` is whether item i holds ``vocab[j]``.

    Repeated labels count once. Labels outside ``vocab`` raise ``ValueError`` naming them,
    and so does a bare string where a collection of labels was meant (it would otherwise
    be read character by character).
    """
    index = {label: j for j, label in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError("vocabulary has repeated labels")
    out = np.zeros((len(label_sets), len(vocab)), dtype=np.bool_)
    unknown: set[str] = set()
    for i, labels in enumerate(label_sets):
        if isinstance(labels, str):
            raise ValueError(
                f"item {i}: expected a collection of labels, got the string {labels!r}"
            )
        for label in labels:
            j = index.get(label)
            if j is None:
                unknown.add(label)
            else:
                out[i, j] = True
    if unknown:
        raise ValueError(f"labels not in the vocabulary: {sorted(unknown)}")
    return out


def label_matrix(answers: Answers, vocab: Sequence[str] | None = None) -> BoolMatrix:
    """Answers as an indicator matrix: label sets are binarized against ``vocab``; a
    matrix of 0/1 or booleans is checked (two dimensions, width ``len(vocab)`` when a
    vocabulary is given) and returned as booleans."""
    if isinstance(answers, np.ndarray):
        if answers.ndim != 2:
            raise ValueError(f"expected an (items, classes) matrix, got shape {answers.shape}")
        if vocab is not None and answers.shape[1] != len(vocab):
            raise ValueError(
                f"matrix has {answers.shape[1]} columns but the vocabulary has {len(vocab)}"
            )
        if answers.dtype != np.bool_ and not np.isin(answers, (0, 1)).all():
            raise ValueError("an indicator matrix holds only 0 and 1")
        return answers.astype(np.bool_, copy=False)
    if vocab is None:
        raise ValueError("label sets need a vocabulary to be binarized")
    return binarize(answers, vocab)


def confusion_counts(y_true: BoolMatrix, y_pred: BoolMatrix) -> npt.NDArray[np.int64]:
    """Per-item, per-class counts, shape (n, 3, C): true positives, false positives and
    false negatives (each 0 or 1). Totals over any multiset of items are sums of rows,
    which is what makes the bootstrap a single matrix product."""
    if y_true.shape != y_pred.shape:
        raise ValueError(f"truth shape {y_true.shape} differs from prediction shape {y_pred.shape}")
    tp = y_true & y_pred
    fp = ~y_true & y_pred
    fn = y_true & ~y_pred
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def _ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def prf_arrays(
    tp: npt.ArrayLike, fp: npt.ArrayLike, fn: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Element-wise precision, recall and F1 from counts, 0 where undefined.

    F1 is ``2 tp / (2 tp + fp + fn)``, which equals the harmonic mean of precision and
    recall wherever both are defined and is 0 wherever sklearn's ``zero_division=0``
    makes it 0.
    """
    tp_ = np.asarray(tp, dtype=np.float64)
    fp_ = np.asarray(fp, dtype=np.float64)
    fn_ = np.asarray(fn, dtype=np.float64)
    return _ratio(tp_, tp_ + fp_), _ratio(tp_, tp_ + fn_), _ratio(2 * tp_, 2 * tp_ + fp_ + fn_)


@dataclass(frozen=True)
class PRF:
    """Precision, recall, F1 and support (number of true label instances)."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain JSON-ready mapping."""
        return asdict(self)


def _micro(totals: npt.NDArray[np.int64]) -> PRF:
    """PRF from (3, C) totals summed over classes."""
    tp, fp, fn = (int(v) for v in totals.sum(axis=1))
    p, r, f = prf_arrays(tp, fp, fn)
    return PRF(float(p), float(r), float(f), tp + fn)


def _mean(values: FloatArray) -> float:
    return float(values.mean()) if values.size else 0.0


@dataclass(frozen=True)
class Scores:
    """Every score of one set of answers.

    ``macro`` averages per-class precision, recall and F1 over the whole vocabulary
    (sklearn's ``average="macro"`` with ``zero_division=0``). ``macro_over_present``
    averages only over classes that occur in the truths or the predictions: it does not
    punish a system for a class that no test item has, which matters on small test sets
    where rare labels are absent (it is also what the published scoring's macro-F1 is,
    since its label set is built from the labels that occur). ``per_sample_type`` holds
    micro scores within each sample type; ``sample_type_items`` says how many items each
    has.
    """

    vocab: tuple[str, ...]
    n_items: int
    micro: PRF
    macro: PRF
    macro_over_present: PRF
    per_class: dict[str, PRF]
    per_sample_type: dict[str, PRF]
    sample_type_items: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping."""
        return {
            "n_items": self.n_items,
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "macro_over_present": self.macro_over_present.to_dict(),
            "per_class": {label: prf.to_dict() for label, prf in self.per_class.items()},
            "per_sample_type": {
                name: {**prf.to_dict(), "n_items": self.sample_type_items[name]}
                for name, prf in self.per_sample_type.items()
            },
        }


def score(
    y_true: Answers,
    y_pred: Answers,
    vocab: Sequence[str],
    sample_types: Sequence[str] | None = None,
) -> Scores:
    """Micro, macro and per-class scores over ``vocab``, and micro scores per sample type.

    ``y_true`` and ``y_pred`` are label sets or indicator matrices (columns in ``vocab``
    order).
    """
    truth = label_matrix(y_true, vocab)
    pred = label_matrix(y_pred, vocab)
    counts = confusion_counts(truth, pred)
    n = counts.shape[0]
    if n == 0:
        raise ValueError("nothing to score: no items")
    totals = counts.sum(axis=0)  # (3, C)
    tp, fp, fn = totals
    precision, recall, f1 = prf_arrays(tp, fp, fn)
    support = tp + fn
    present = (tp + fp + fn) > 0
    per_class = {
        label: PRF(float(precision[j]), float(recall[j]), float(f1[j]), int(support[j]))
        for j, label in enumerate(vocab)
    }
    total_support = int(support.sum())
    macro = PRF(_mean(precision), _mean(recall), _mean(f1), total_support)
    macro_present = PRF(
        _mean(precision[present]), _mean(recall[present]), _mean(f1[present]), total_support
    )
    per_type: dict[str, PRF] = {}
    type_items: dict[str, int] = {}
    if sample_types is not None:
        if len(sample_types) != n:
            raise ValueError(f"{len(sample_types)} sample types for {n} items")
        kinds = np.asarray(sample_types, dtype=object)
        for kind in sorted(set(sample_types)):
            rows = kinds == kind
            per_type[kind] = _micro(counts[rows].sum(axis=0))
            type_items[kind] = int(rows.sum())
    return Scores(
        vocab=tuple(vocab),
        n_items=n,
        micro=_micro(totals),
        macro=macro,
        macro_over_present=macro_present,
        per_class=per_class,
        per_sample_type=per_type,
        sample_type_items=type_items,
    )


def parity_matrices(
    true_texts: Sequence[str], pred_texts: Sequence[str], *, require_brackets: bool = False
) -> tuple[BoolMatrix, BoolMatrix, tuple[str, ...]]:
    """Truths and predictions as the published code saw them: labels read by
    `ptychobench.parsing.parity_labels` (raw strings, "No obvious artifacts" dropped),
    over the sorted set of labels that occur in either. Returns (truth, prediction,
    label set). ``require_brackets`` selects the published detection (VLM) script's
    regex, which only reads ``<answer>[…]</answer>``; the recommendation (LLM) script's
    regex makes the brackets optional."""
    from ptychobench.parsing import parity_labels

    if len(true_texts) != len(pred_texts):
        raise ValueError(f"{len(true_texts)} truths for {len(pred_texts)} predictions")
    truths = [parity_labels(text, require_brackets=require_brackets) for text in true_texts]
    preds = [parity_labels(text, require_brackets=require_brackets) for text in pred_texts]
    labels = tuple(sorted({label for row in (*truths, *preds) for label in row}))
    return binarize(truths, labels), binarize(preds, labels), labels


def parity_score(
    true_texts: Sequence[str],
    pred_texts: Sequence[str],
    sample_types: Sequence[str] | None = None,
    *,
    require_brackets: bool = False,
) -> Scores:
    """Scores from raw answer texts the way the published PtychoBench code computed them
    (``require_brackets=True`` for its detection script, see `parity_matrices`).

    Micro scores do not depend on which absent labels the label set holds, so the
    difference from `score` comes from parsing (published regex, raw strings, junk labels
    counted as false positives) and from dropping "No obvious artifacts"; macro scores
    also differ because only labels that occur are averaged.
    """
    truth, pred, labels = parity_matrices(true_texts, pred_texts, require_brackets=require_brackets)
    return score(truth, pred, labels, sample_types)
