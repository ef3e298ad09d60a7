from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, OPTION_LETTERS
from ptychobench.metrics import (
    PRF,
    binarize,
    confusion_counts,
    label_matrix,
    parity_matrices,
    parity_score,
    score,
)

HALO, LINE, GRID = "Halo artifacts", "Line artifacts", "Grid artifacts"


def sk_prf(t: np.ndarray, p: np.ndarray, average: str | None, **kw: Any) -> Any:
    """sklearn's scores. One column would be read as a binary target (averaging over the
    positive and the negative class), so it is passed as the binary problem it is."""
    if t.ndim == 2 and t.shape[1] == 1:
        t, p = t.ravel(), p.ravel()
        if average is None:
            kw = {"labels": [1]}
        else:
            average, kw = "binary", {}
    return precision_recall_fscore_support(t, p, average=average, zero_division=0, **kw)


def assert_matches_sklearn(t: np.ndarray, p: np.ndarray) -> None:
    vocab = [f"c{j}" for j in range(t.shape[1])]
    s = score(t, p, vocab)
    for average, prf in (("micro", s.micro), ("macro", s.macro)):
        precision, recall, f1, _ = sk_prf(t, p, average)
        assert (prf.precision, prf.recall, prf.f1) == pytest.approx((precision, recall, f1))
    precision, recall, f1, support = sk_prf(t, p, None)
    for j, label in enumerate(vocab):
        got = s.per_class[label]
        assert (got.precision, got.recall, got.f1) == pytest.approx(
            (precision[j], recall[j], f1[j])
        )
        assert got.support == support[j]
    assert s.micro.support == s.macro.support == int(t.sum())
    present = np.flatnonzero(t.any(axis=0) | p.any(axis=0))
    if present.size:
        precision, recall, f1, _ = sk_prf(t, p, "macro", labels=present)
        got = s.macro_over_present
        assert (got.precision, got.recall, got.f1) == pytest.approx((precision, recall, f1))


def test_binarize_marks_labels_in_vocabulary_order_and_ignores_repeats() -> None:
    out = binarize([[LINE, HALO, HALO], [], [NO_ARTIFACTS]], ARTIFACT_LABELS)
    assert out.dtype == np.bool_
    assert out.shape == (3, 12)
    assert np.flatnonzero(out[0]).tolist() == [1, 2]
    assert not out[1].any()
    assert np.flatnonzero(out[2]).tolist() == [11]


def test_binarize_names_unknown_labels() -> None:
    with pytest.raises(ValueError, match=r"\['Sparkles', 'halo'\]"):
        binarize([[HALO, "halo"], ["Sparkles"]], ARTIFACT_LABELS)


def test_binarize_refuses_a_bare_string_row() -> None:
    with pytest.raises(ValueError, match="collection of labels"):
        binarize(["GK"], OPTION_LETTERS)


def test_label_matrix_checks_matrices() -> None:
    assert label_matrix(np.array([[0, 1]]), ["a", "b"]).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="columns"):
        label_matrix(np.zeros((2, 3), dtype=bool), ["a", "b"])
    with pytest.raises(ValueError, match="0 and 1"):
        label_matrix(np.array([[0, 2]]), ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        label_matrix(np.zeros(3, dtype=bool), ["a", "b", "c"])
    with pytest.raises(ValueError, match="vocabulary"):
        label_matrix([["a"]])


def test_confusion_counts_per_item() -> None:
    t = np.array([[1, 1, 0, 0]], dtype=bool)
    p = np.array([[1, 0, 1, 0]], dtype=bool)
    assert confusion_counts(t, p).tolist() == [[[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]]


def test_equals_sklearn_on_many_seeded_random_cases() -> None:
    rng = np.random.default_rng(2024)
    for case in range(60):
        n = int(rng.integers(1, 40))
        c = int(rng.integers(1, 15))
        t = rng.random((n, c)) < rng.random() * (case % 3 != 0)  # some all-empty truths
        p = rng.random((n, c)) < rng.random()
        p[:, rng.random(c) < 0.3] = False  # classes nobody predicts
        t[rng.random(n) < 0.2] = False  # all-zero rows
        assert_matches_sklearn(t, p)


@settings(deadline=None, max_examples=60)
@given(
    st.integers(1, 25).flatmap(
        lambda n: st.integers(1, 12).flatmap(
            lambda c: st.tuples(
                arrays(np.bool_, (n, c)),
                arrays(np.bool_, (n, c)),
            )
        )
    )
)
def test_equals_sklearn_property(pair: tuple[np.ndarray, np.ndarray]) -> None:
    assert_matches_sklearn(*pair)


def test_class_with_no_true_and_no_predicted_instances_scores_zero_in_macro() -> None:
    t = np.array([[1, 0], [1, 0]], dtype=bool)
    s = score(t, t.copy(), ["a", "b"])
    assert s.micro.f1 == 1.0
    assert s.per_class["b"] == PRF(0.0, 0.0, 0.0, 0)
    assert s.macro.f1 == 0.5 == f1_score(t, t, average="macro", zero_division=0)
    assert s.macro_over_present.f1 == 1.0


def test_label_sets_and_matrices_score_alike() -> None:
    truths = [[HALO], [LINE, GRID], [NO_ARTIFACTS]]
    preds = [[HALO, LINE], [GRID], [NO_ARTIFACTS]]
    from_sets = score(truths, preds, ARTIFACT_LABELS)
    from_matrices = score(
        binarize(truths, ARTIFACT_LABELS), binarize(preds, ARTIFACT_LABELS), ARTIFACT_LABELS
    )
    assert from_sets == from_matrices
    # 3 true positives (Halo, Grid, null), 1 false positive, 1 false negative.
    assert from_sets.micro == PRF(0.75, 0.75, 0.75, 4)


def test_per_sample_type_is_micro_within_each_type() -> None:
    rng = np.random.default_rng(7)
    t = rng.random((30, 5)) < 0.4
    p = rng.random((30, 5)) < 0.4
    kinds = [("Siemens star", "E. coli", "Integrated circuit")[i % 3] for i in range(30)]
    s = score(t, p, list("abcde"), sample_types=kinds)
    assert list(s.per_sample_type) == sorted(set(kinds))
    for kind, prf in s.per_sample_type.items():
        rows = np.array([k == kind for k in kinds])
        precision, recall, f1, _ = sk_prf(t[rows], p[rows], "micro")
        assert (prf.precision, prf.recall, prf.f1) == pytest.approx((precision, recall, f1))
        assert prf.support == int(t[rows].sum())
        assert s.sample_type_items[kind] == 10
    assert score(t, p, list("abcde")).per_sample_type == {}


def test_score_refuses_mismatches_and_empty_input() -> None:
    with pytest.raises(ValueError, match="sample types"):
        score([["a"]], [["a"]], ["a"], sample_types=["x", "y"])
    with pytest.raises(ValueError, match="shape"):
        score([["a"], ["a"]], [["a"]], ["a"])
    with pytest.raises(ValueError, match="no items"):
        score([], [], ["a"])


def test_to_dict_is_json_ready() -> None:
    s = score([[HALO]], [[HALO, LINE]], ARTIFACT_LABELS, sample_types=["Siemens star"])
    data = json.loads(json.dumps(s.to_dict()))
    assert data["micro"]["f1"] == pytest.approx(2 / 3)
    assert data["per_class"][LINE] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert data["per_sample_type"]["Siemens star"]["n_items"] == 1
    assert set(data) == {
        "n_items",
        "micro",
        "macro",
        "macro_over_present",
        "per_class",
        "per_sample_type",
    }


# Parity scoring. Three items where the two scorings disagree, for two reasons:
#  1. "No obvious artifacts" is a class of ours (a correct "nothing to report" is a true
#     positive, a wrong one a false positive) but parity drops it from truths and answers.
#  2. A label outside the vocabulary ("Sparkles") is a parse failure for us (dropped, and
#     counted elsewhere) but a class of its own for parity, so it is a false positive.
PARITY_TRUTHS = [
    "<answer>[No obvious artifacts]</answer>",
    "<answer>[Halo artifacts]</answer>",
    "<answer>[Line artifacts]</answer>",
]
PARITY_PREDS = [
    "<answer>[No obvious artifacts]</answer>",
    "<answer>[Halo artifacts, Sparkles]</answer>",
    "The image looks fine. <answer>[No obvious artifacts]</answer>",
]


def test_parity_and_fixed_vocabulary_scorings_differ_for_stated_reasons() -> None:
    ours = score(
        [[NO_ARTIFACTS], [HALO], [LINE]],
        [[NO_ARTIFACTS], [HALO], [NO_ARTIFACTS]],
        ARTIFACT_LABELS,
    )
    # ours: TP = null + Halo, FP = null (item 3), FN = Line -> 2*2 / (2*2 + 1 + 1)
    assert ours.micro.f1 == pytest.approx(2 / 3)
    parity = parity_score(PARITY_TRUTHS, PARITY_PREDS)
    # parity: TP = Halo, FP = Sparkles, FN = Line -> 2 / (2 + 1 + 1)
    assert parity.micro.f1 == pytest.approx(0.5)
    assert parity.vocab == ("Halo artifacts", "Line artifacts", "Sparkles")
    assert parity.macro.f1 == pytest.approx(1 / 3)  # Halo 1, Line 0, Sparkles 0
    assert ours.macro.f1 == pytest.approx((1 + 2 / 3) / 12)


def test_parity_score_equals_sklearn_on_the_published_recipe() -> None:
    # Labels read by hand the published way; sklearn over the labels that occur.
    truths = [[], ["Halo artifacts"], ["Line artifacts"]]
    preds = [[], ["Halo artifacts", "Sparkles"], []]
    binarizer = MultiLabelBinarizer(classes=sorted({x for row in truths + preds for x in row}))
    t, p = binarizer.fit_transform(truths), binarizer.transform(preds)
    parity = parity_score(PARITY_TRUTHS, PARITY_PREDS, sample_types=["a", "b", "b"])
    for average, prf in (("micro", parity.micro), ("macro", parity.macro)):
        precision, recall, f1, _ = sk_prf(t, p, average)
        assert (prf.precision, prf.recall, prf.f1) == pytest.approx((precision, recall, f1))
    assert parity.sample_type_items == {"a": 1, "b": 2}
    assert parity.per_sample_type["a"] == PRF(0.0, 0.0, 0.0, 0)


def test_parity_reads_unbracketed_letters_and_missing_answers_as_empty() -> None:
    t, p, labels = parity_matrices(
        ["<answer>G, K</answer>", "<answer>L</answer>"], ["<answer>K</answer>", "no tags"]
    )
    assert labels == ("G", "K", "L")
    assert t.tolist() == [[True, True, False], [False, False, True]]
    assert p.tolist() == [[False, True, False], [False, False, False]]
    with pytest.raises(ValueError, match="2 truths for 1 predictions"):
        parity_matrices(["a", "b"], ["c"])


def test_parity_with_no_labels_at_all_scores_zero() -> None:
    s = parity_score(["<answer>[No obvious artifacts]</answer>"], ["nothing"])
    assert s.vocab == ()
    assert (s.micro.f1, s.macro.f1) == (0.0, 0.0)


def test_parity_can_require_brackets_like_the_published_detection_script() -> None:
    truths = ["<answer>[Halo artifacts]</answer>", "<answer>[Line artifacts]</answer>"]
    preds = ["<answer>Halo artifacts</answer>", "<answer>[Line artifacts]</answer>"]
    # optional brackets (the recommendation script's regex) read both answers
    assert parity_score(truths, preds).micro.f1 == 1.0
    # brackets required (the detection script's regex): the first answer reads as empty
    strict = parity_score(truths, preds, require_brackets=True)
    assert strict.micro == PRF(1.0, 0.5, pytest.approx(2 / 3), 2)  # type: ignore[arg-type]
