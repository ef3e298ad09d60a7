"""The image metrics on synthetic images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from ptychobench.sim.metrics import (
    METRIC_NAMES,
    gaussian_blur,
    grid_power,
    halo,
    image_metrics,
    line_shift,
    ramp_slope,
    residues,
    scan_mask,
)

N = 96


def _truth(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = gaussian_blur(rng.normal(size=(N, N)), 1.5)
    phase = 1.5 * phase / np.abs(phase).max()
    return np.exp(1j * phase)


MASK = np.ones((N, N), dtype=bool)


def test_a_perfect_reconstruction_scores_perfectly_up_to_a_constant_phase() -> None:
    truth = _truth()
    metrics = image_metrics(truth * np.exp(0.7j), truth, MASK, 8.0)
    assert list(metrics) == list(METRIC_NAMES)
    assert metrics["nrmse"] < 1e-6
    assert metrics["correlation"] == pytest.approx(1.0)
    assert metrics["contrast"] == pytest.approx(1.0)
    assert metrics["sharpness"] == pytest.approx(1.0)
    assert metrics["ramp_slope"] < 1e-9
    assert metrics["noise_power"] < 1e-9
    assert metrics["line_shift"] < 1e-6
    assert metrics["low_freq_transfer"] == pytest.approx(1.0)


def test_ramp_slope_measures_a_linear_phase_ramp() -> None:
    truth = _truth()
    y, x = np.mgrid[0:N, 0:N]
    ramped = truth * np.exp(1j * (0.03 * y - 0.04 * x))
    assert ramp_slope(ramped, truth) == pytest.approx(0.05, rel=1e-6)
    assert image_metrics(ramped, truth, MASK, 8.0)["ramp_slope"] == pytest.approx(0.05, rel=1e-6)
    # the other metrics are taken after the ramp is removed
    assert image_metrics(ramped, truth, MASK, 8.0)["nrmse"] < 1e-6


def test_blur_lowers_sharpness_and_noise_raises_noise_power() -> None:
    truth = _truth()
    blurred = np.exp(1j * gaussian_blur(np.angle(truth), 2.0))
    noisy = truth * np.exp(1j * np.random.default_rng(1).normal(0, 0.3, (N, N)))
    clean = image_metrics(truth, truth, MASK, 8.0)
    assert image_metrics(blurred, truth, MASK, 8.0)["sharpness"] < 0.5 * clean["sharpness"]
    assert image_metrics(noisy, truth, MASK, 8.0)["noise_power"] > 0.1


def test_grid_power_finds_the_scan_period() -> None:
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:N, 0:N]
    grid = 0.3 * (np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8))
    noise = rng.normal(0, 0.3, (N, N))
    assert grid_power(grid + noise, 8.0) > 0.3  # half the variance is the grid
    assert grid_power(noise, 8.0) < 0.1
    assert grid_power(grid + noise, 12.0) < 0.1  # another period is not this grid


def test_line_shift_sees_rows_moved_back_and_forth() -> None:
    truth = np.angle(_truth(3))
    lagged = truth.copy()
    for band, top in enumerate(range(0, N, 4)):
        lagged[top : top + 4] = np.roll(truth[top : top + 4], 2 if band % 2 else -2, axis=1)
    assert line_shift(truth, truth) < 1e-6
    assert line_shift(lagged, truth) > 1.5
    sheared = np.stack([np.roll(truth[i], i // 32, axis=0) for i in range(N)])
    assert line_shift(sheared, truth) < 0.5  # a steady trend is not lines


def test_halo_is_missing_low_frequencies() -> None:
    truth = np.zeros((N, N))
    yy, xx = np.mgrid[0:N, 0:N]
    truth[np.hypot(yy - 48, xx - 48) < 20] = 1.0
    high_passed = truth - gaussian_blur(truth, 6.0)
    transfer, slope = halo(high_passed, truth)
    assert transfer < 0.5
    assert slope < -0.25
    assert halo(truth, truth) == pytest.approx((1.0, 0.0))


def test_residues_count_phase_vortices() -> None:
    y, x = np.mgrid[0:N, 0:N] - N / 2 + 0.5
    vortex = np.exp(1j * np.arctan2(y, x))
    assert residues(vortex) == pytest.approx(1000 / (N - 1) ** 2)
    assert residues(_truth()) == 0.0


def test_scan_mask_keeps_the_well_scanned_area() -> None:
    positions = np.array([[-10.0, -10.0], [10.0, 10.0]])
    mask = scan_mask((96, 96), positions, 32)
    rows = np.flatnonzero(mask.any(axis=1))
    assert rows[0] > 0
    assert rows[-1] < 95
    assert mask[48, 48]
    with pytest.raises(ValueError, match="too small"):
        scan_mask((96, 96), np.zeros((1, 2)), 4)


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="must match"):
        image_metrics(np.ones((4, 4)), np.ones((5, 5)), np.ones((4, 4), bool), 8.0)
