"""Time the vectorised bootstrap against the per-resample loop.

A seeded random case the size of the detection test set (79 items x 12 labels) is
bootstrapped with both implementations; they must give the same interval (they draw the
same resamples), and the script prints both times and the speed-up. The loop runs once
(it is slow); the vectorised version reports its best of ``--repeats`` runs. With
``--sklearn`` it also times the published script's recipe (sklearn's f1_score once per
resample, same resamples), which needs scikit-learn (a dev dependency).

    .venv/bin/python benchmarks/bootstrap.py [--n-resamples 10000] [--repeats 5] [--sklearn]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ptychobench.bootstrap import bootstrap, bootstrap_loop


def make_case(seed: int, n_items: int = 79, n_labels: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Truths at about 2.2 labels per item (as in the detection test set) and predictions
    that agree with them about 85 % of the time per label."""
    rng = np.random.default_rng(seed)
    truth = rng.random((n_items, n_labels)) < 2.2 / n_labels
    prediction = truth ^ (rng.random((n_items, n_labels)) < 0.15)
    return truth, prediction


def sklearn_loop(
    truth: np.ndarray, prediction: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """Micro-F1 of each resample by sklearn, on the resamples `bootstrap` draws."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    scores = np.empty(n_resamples)
    for b in range(n_resamples):
        rows = rng.integers(0, truth.shape[0], size=truth.shape[0])
        scores[b] = f1_score(truth[rows], prediction[rows], average="micro", zero_division=0)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="best-of for the vectorised run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sklearn", action="store_true", help="also time sklearn per resample")
    args = parser.parse_args()

    truth, prediction = make_case(args.seed)
    start = time.perf_counter()
    slow = bootstrap_loop(truth, prediction, n_resamples=args.n_resamples, seed=args.seed)
    loop_s = time.perf_counter() - start

    fast_s = float("inf")
    for _ in range(max(1, args.repeats)):
        start = time.perf_counter()
        fast = bootstrap(truth, prediction, n_resamples=args.n_resamples, seed=args.seed)
        fast_s = min(fast_s, time.perf_counter() - start)

    same = np.array_equal(fast.distribution, slow.distribution)
    print(
        f"{truth.shape[0]} items x {truth.shape[1]} labels, {args.n_resamples} resamples, "
        f"seed {args.seed}: micro-F1 {fast.point:.3f}, 95 % CI "
        f"[{fast.ci_low:.3f}, {fast.ci_high:.3f}] (loop [{slow.ci_low:.3f}, {slow.ci_high:.3f}])"
    )
    print(f"same resampled scores: {'yes' if same else 'NO'}")
    print(f"loop {loop_s:.2f} s, vectorised {fast_s:.3f} s, speed-up {loop_s / fast_s:.0f}x")
    if args.sklearn:
        start = time.perf_counter()
        published = sklearn_loop(truth, prediction, args.n_resamples, args.seed)
        sklearn_s = time.perf_counter() - start
        agrees = np.allclose(published, fast.distribution, rtol=0, atol=1e-12)
        print(
            f"sklearn per resample {sklearn_s:.2f} s (speed-up {sklearn_s / fast_s:.0f}x), "
            f"same scores: {'yes' if agrees else 'NO'}"
        )
        same = same and agrees
    if not same or (fast.ci_low, fast.ci_high) != (slow.ci_low, slow.ci_high):
        raise SystemExit("the two implementations disagree")


if __name__ == "__main__":
    main()
