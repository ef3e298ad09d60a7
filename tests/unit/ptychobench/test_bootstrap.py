from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score

from ptychobench.bootstrap import (
    STATISTICS,
    bootstrap,
    bootstrap_loop,
    bootstrap_mean,
    paired_bootstrap,
    paired_bootstrap_mean,
)
from ptychobench.metrics import score


def random_case(seed: int, n: int = 40, c: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Truths with at least one label per item, predictions = truths with some flips."""
    rng = np.random.default_rng(seed)
    t = rng.random((n, c)) < 0.25
    t[np.arange(n), rng.integers(0, c, size=n)] = True
    p = t ^ (rng.random((n, c)) < 0.15)
    return t, p


@st.composite
def cases(draw: st.DrawFn, min_n: int = 20, max_n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Non-degenerate multi-label cases: n >= 20 items, each holding at least one true
    label, predictions made by flipping truths at a drawn rate."""
    return random_case(
        draw(st.integers(0, 2**32 - 1)),
        n=draw(st.integers(min_n, max_n)),
        c=draw(st.integers(1, 8)),
    )


SETTINGS = settings(deadline=None, max_examples=25)


@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_vectorised_equals_the_per_resample_loop(statistic: str, chunk_size: int | None) -> None:
    t, p = random_case(3, n=23, c=5)
    fast = bootstrap(t, p, statistic, n_resamples=200, seed=11, chunk_size=chunk_size)  # type: ignore[arg-type]
    slow = bootstrap_loop(t, p, statistic, n_resamples=200, seed=11)  # type: ignore[arg-type]
    assert np.array_equal(fast.distribution, slow.distribution)
    assert fast == slow


def test_point_estimates_equal_sklearn_and_score() -> None:
    t, p = random_case(5)
    expected = {
        "micro_f1": f1_score(t, p, average="micro", zero_division=0),
        "macro_f1": f1_score(t, p, average="macro", zero_division=0),
        "micro_precision": precision_score(t, p, average="micro", zero_division=0),
        "micro_recall": recall_score(t, p, average="micro", zero_division=0),
    }
    for statistic, value in expected.items():
        assert bootstrap(t, p, statistic, n_resamples=10).point == pytest.approx(value)  # type: ignore[arg-type]
    assert bootstrap(t, p, n_resamples=10).point == score(t, p, list("abcdefgh")).micro.f1


def test_label_sets_with_a_vocabulary_give_the_same_result_as_matrices() -> None:
    vocab = ["G", "K", "L"]
    truths = [["G"], ["K", "L"], ["L"], ["G", "K"]]
    preds = [["G"], ["K"], ["G"], ["G", "K", "L"]]
    from_sets = bootstrap(truths, preds, n_resamples=300, seed=2, vocab=vocab)
    t = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=bool)
    p = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=bool)
    assert from_sets == bootstrap(t, p, n_resamples=300, seed=2)


def test_summary_is_mean_std_and_percentiles_of_the_distribution() -> None:
    t, p = random_case(8)
    r = bootstrap(t, p, n_resamples=500, seed=1, confidence=0.9)
    assert r.mean == pytest.approx(r.distribution.mean())
    assert r.std == pytest.approx(r.distribution.std())
    assert r.ci_low == pytest.approx(np.percentile(r.distribution, 5))
    assert r.ci_high == pytest.approx(np.percentile(r.distribution, 95))
    assert (r.n_resamples, r.n_items, r.seed, r.confidence) == (500, 40, 1, 0.9)
    data = json.loads(json.dumps(r.to_dict()))
    assert "distribution" not in data
    assert data["ci_low"] == r.ci_low


@SETTINGS
@given(cases(min_n=1, max_n=30), st.sampled_from(STATISTICS))
def test_interval_is_ordered_and_inside_the_distribution(
    case: tuple[np.ndarray, np.ndarray], statistic: str
) -> None:
    # A percentile interval need not contain the bootstrap mean (a skewed distribution
    # can put its mean beyond a percentile), but it always lies within the distribution.
    r = bootstrap(*case, statistic, n_resamples=200, seed=0)  # type: ignore[arg-type]
    lowest, highest = r.distribution.min(), r.distribution.max()
    assert lowest <= r.ci_low <= r.ci_high <= highest
    assert lowest - 1e-12 <= r.mean <= highest + 1e-12  # a mean is exact only up to rounding


@SETTINGS
@given(cases(), st.sampled_from(STATISTICS))
def test_interval_contains_the_point_estimate(
    case: tuple[np.ndarray, np.ndarray], statistic: str
) -> None:
    # With 20+ items that all hold a label, the statistic is a smooth function of sums
    # of item counts whose bootstrap distribution is centred on the observed sums, so
    # the point estimate sits well inside a 95 % percentile interval.
    r = bootstrap(*case, statistic, n_resamples=400, seed=1)  # type: ignore[arg-type]
    assert r.ci_low <= r.point <= r.ci_high


@SETTINGS
@given(cases(min_n=10, max_n=30))
def test_interval_narrows_when_the_test_set_grows(case: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = case
    once = bootstrap(t, p, n_resamples=400, seed=2)
    assume(once.ci_high > once.ci_low)
    sixteen = bootstrap(np.tile(t, (16, 1)), np.tile(p, (16, 1)), n_resamples=400, seed=2)
    assert sixteen.point == pytest.approx(once.point)
    assert sixteen.ci_high - sixteen.ci_low < once.ci_high - once.ci_low


def test_width_scales_like_one_over_root_n() -> None:
    t, p = random_case(9, n=79, c=12)
    once = bootstrap(t, p, n_resamples=4000, seed=0)
    sixteen = bootstrap(np.tile(t, (16, 1)), np.tile(p, (16, 1)), n_resamples=4000, seed=0)
    ratio = (sixteen.ci_high - sixteen.ci_low) / (once.ci_high - once.ci_low)
    assert 0.2 < ratio < 0.3  # 1 / sqrt(16) = 0.25


@SETTINGS
@given(cases(), st.integers(0, 2**31), st.integers(0, 2**31))
def test_same_seed_same_result_other_seed_other_resamples(
    case: tuple[np.ndarray, np.ndarray], seed: int, other: int
) -> None:
    assume(seed != other)
    first = bootstrap(*case, n_resamples=100, seed=seed)
    again = bootstrap(*case, n_resamples=100, seed=seed)
    assert first == again
    assert np.array_equal(first.distribution, again.distribution)
    assume(first.std > 0)
    assert not np.array_equal(
        first.distribution, bootstrap(*case, n_resamples=100, seed=other).distribution
    )


@SETTINGS
@given(cases(min_n=1, max_n=30), st.sampled_from(STATISTICS))
def test_a_system_against_itself_differs_by_exactly_zero(
    case: tuple[np.ndarray, np.ndarray], statistic: str
) -> None:
    t, p = case
    r = paired_bootstrap(t, p, p.copy(), statistic, n_resamples=200, seed=4)  # type: ignore[arg-type]
    assert not r.distribution.any()
    assert (r.point_diff, r.mean, r.std, r.ci_low, r.ci_high, r.p_value) == (0, 0, 0, 0, 0, 1)


@SETTINGS
@given(cases(min_n=30, max_n=60))
def test_a_clearly_better_system_has_an_interval_above_zero(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    t, _ = case
    rng = np.random.default_rng(0)
    noisy = t ^ (rng.random(t.shape) < 0.5)  # half of all decisions flipped
    r = paired_bootstrap(t, t.copy(), noisy, n_resamples=500, seed=5)
    assert r.point_diff > 0
    assert r.ci_low > 0
    assert r.p_value == pytest.approx(2 / 501)


def test_paired_uses_the_same_resamples_for_both_systems() -> None:
    t, a = random_case(1)
    _, b = random_case(2)
    paired = paired_bootstrap(t, a, b, n_resamples=300, seed=9, chunk_size=64)
    alone_a = bootstrap(t, a, n_resamples=300, seed=9)
    alone_b = bootstrap(t, b, n_resamples=300, seed=9)
    assert np.array_equal(paired.distribution, alone_a.distribution - alone_b.distribution)
    assert paired.point_diff == pytest.approx(alone_a.point - alone_b.point)
    reverse = paired_bootstrap(t, b, a, n_resamples=300, seed=9)
    assert np.array_equal(reverse.distribution, -paired.distribution)
    assert reverse.p_value == paired.p_value
    assert json.loads(json.dumps(paired.to_dict()))["p_value"] == paired.p_value


def test_p_value_follows_the_sign_counts_of_the_differences() -> None:
    t, a = random_case(1, n=30)
    _, b = random_case(2, n=30)
    r = paired_bootstrap(t, a, b, n_resamples=400, seed=3)
    below = (np.count_nonzero(r.distribution <= 0) + 1) / 401
    above = (np.count_nonzero(r.distribution >= 0) + 1) / 401
    assert 0 < r.p_value < 1
    assert r.p_value == pytest.approx(min(1.0, 2 * min(below, above)))


def test_bad_arguments_are_refused() -> None:
    t, p = random_case(0, n=5, c=3)
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap(t, p, "weighted_f1", n_resamples=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap(t, p, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap(t, p, n_resamples=10, confidence=1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        bootstrap(t, p, n_resamples=10, chunk_size=0)
    with pytest.raises(ValueError, match="zero items"):
        bootstrap(t[:0], p[:0], n_resamples=10)
    with pytest.raises(ValueError, match="zero items"):
        bootstrap_loop(t[:0], p[:0], n_resamples=10)
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(t, p, p[:, :2], n_resamples=10)


def test_bootstrap_mean_is_the_loop_of_resampled_means() -> None:
    values = np.random.default_rng(3).random(25) < 0.4
    result = bootstrap_mean(values, n_resamples=500, seed=9)
    rng = np.random.default_rng(9)
    loop = [values[rng.integers(0, 25, size=25)].mean() for _ in range(500)]
    assert result.point == pytest.approx(values.mean())
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])))
    with pytest.raises(ValueError, match="zero items"):
        bootstrap_mean([])


def test_paired_bootstrap_mean() -> None:
    a = np.array([1.0] * 15 + [0.0] * 5)
    b = np.array([0.0] * 20)
    result = paired_bootstrap_mean(a, b, n_resamples=1000)
    assert result.point_diff == pytest.approx(0.75)
    assert 0.5 < result.ci_low < 0.75 < result.ci_high
    assert result.p_value < 0.01
    assert paired_bootstrap_mean(a, a, n_resamples=100).p_value == 1.0
    with pytest.raises(ValueError, match="disagree in shape"):
        paired_bootstrap_mean(a, b[:3])
