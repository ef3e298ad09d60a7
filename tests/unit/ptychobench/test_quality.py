"""No-reference metrics move with the artifact each one stands for."""

from __future__ import annotations

import numpy as np
import pytest

from ptychobench.quality import (
    NO_REFERENCE_METRICS,
    no_reference_metrics,
    phase_image,
    phase_png,
    scan_step,
)
from ptychobench.sim.metrics import gaussian_blur, scan_mask
from ptychobench.sim.objects import make_object

GRID = np.arange(-30.0, 31.0, 6.0)
POSITIONS = np.stack(np.meshgrid(GRID, GRID, indexing="ij"), axis=-1).reshape(-1, 2)


@pytest.fixture(scope="module")
def obj() -> np.ndarray:
    return make_object("Integrated circuit", 128, np.random.default_rng(3)).astype(np.complex128)


def _metrics(image: np.ndarray) -> dict[str, float]:
    return no_reference_metrics(image, POSITIONS, 32)


def test_every_metric_is_there_and_finite(obj: np.ndarray) -> None:
    metrics = _metrics(obj)
    assert tuple(metrics) == NO_REFERENCE_METRICS
    assert all(np.isfinite(v) for v in metrics.values())


def test_the_phase_image_is_a_png_of_the_scanned_phase(obj: np.ndarray) -> None:
    mask = scan_mask(obj.shape, POSITIONS, 32)
    assert phase_png(obj, mask).startswith(b"\x89PNG")
    assert phase_png(obj, mask) == phase_image(obj, mask)[0]


def test_blur_lowers_sharpness_and_contrast(obj: np.ndarray) -> None:
    phase = gaussian_blur(np.angle(obj), 2.0)
    blurred = np.abs(obj) * np.exp(1j * phase)
    assert _metrics(blurred)["sharpness"] < 0.7 * _metrics(obj)["sharpness"]
    assert _metrics(blurred)["phase_contrast"] < _metrics(obj)["phase_contrast"]


def test_a_ramp_noise_and_vortices_show(obj: np.ndarray) -> None:
    _y, x = np.mgrid[0:128, 0:128]
    clean = _metrics(obj)
    assert _metrics(obj * np.exp(0.2j * x))["ramp_slope"] > clean["ramp_slope"] + 0.15
    noisy = obj * np.exp(0.5j * np.random.default_rng(0).normal(size=obj.shape))
    assert _metrics(noisy)["noise_power"] > 2 * clean["noise_power"]
    wild = obj * np.exp(2j * np.random.default_rng(1).normal(size=obj.shape))
    assert _metrics(wild)["residues"] > clean["residues"] + 10


def test_row_shifts_show_as_line_shift(obj: np.ndarray) -> None:
    shifted = obj.copy()
    for top in range(0, 128, 8):
        shifted[top : top + 4] = np.roll(obj[top : top + 4], 2, axis=1)
    assert _metrics(shifted)["line_shift"] > _metrics(obj)["line_shift"] + 0.5


def test_the_scan_step_is_the_neighbour_distance() -> None:
    assert scan_step(POSITIONS) == pytest.approx(6.0)
    assert scan_step(POSITIONS[:1]) == 0.0
