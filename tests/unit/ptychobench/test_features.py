"""The physics features respond to what they are named after, on synthetic images."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from ptychobench.features import (
    CANONICAL_SIZE,
    FEATURE_DOCS,
    FEATURE_NAMES,
    feature_dict,
    image_features,
    resample,
)

FloatArray = npt.NDArray[np.float64]
N = CANONICAL_SIZE


def _grid(n: int = N) -> tuple[FloatArray, FloatArray]:
    """(y, x) pixel coordinates in image widths, 0 at the first pixel."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return y / n, x / n


def smooth(n: int = N, seed: int = 0) -> FloatArray:
    """A few broad Gaussian blobs: structure without periodicity, noise or ramps."""
    rng = np.random.default_rng(seed)
    y, x = _grid(n)
    image = np.zeros((n, n))
    for _ in range(8):
        cy, cx = rng.uniform(0.2, 0.8, size=2)
        image += rng.uniform(-1, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.004)
    return 0.5 + 0.35 * image / np.abs(image).max()


def noisy(image: FloatArray, sigma: float, seed: int = 1) -> FloatArray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 1)


def test_every_feature_is_documented_and_returned_in_order() -> None:
    assert tuple(FEATURE_DOCS) == FEATURE_NAMES
    assert all(len(doc) > 20 for doc in FEATURE_DOCS.values())
    values = image_features(smooth())
    assert values.shape == (len(FEATURE_NAMES),)
    assert np.isfinite(values).all()
    assert list(feature_dict(smooth())) == list(FEATURE_NAMES)


def test_a_periodic_grid_makes_an_axis_peak_that_a_smooth_image_lacks() -> None:
    y, x = _grid()
    period = 8 / N  # an 8-px scan step
    grid = smooth() + 0.08 * (np.cos(2 * np.pi * x / period) + np.cos(2 * np.pi * y / period))
    plain = feature_dict(noisy(smooth(), 0.01))
    gridded = feature_dict(noisy(np.clip(grid, 0, 1), 0.01))
    assert gridded["axis_peak_ratio"] > plain["axis_peak_ratio"] + 1.0
    assert gridded["peak_ratio"] > plain["peak_ratio"] + 1.0
    assert gridded["axis_power"] > plain["axis_power"]


@pytest.mark.parametrize("slope", [0.1, 0.25, 0.5])
def test_the_ramp_slope_tracks_a_linear_ramp(slope: float) -> None:
    _, x = _grid()
    texture = 0.05 * (smooth() - 0.5)
    ramp = 0.5 + slope * (x - 0.5) + texture
    measured = feature_dict(ramp)
    assert measured["ramp_slope"] == pytest.approx(slope, rel=0.1)
    assert measured["ramp_r2"] > 0.9
    assert feature_dict(0.5 + texture)["ramp_slope"] < 0.05


def test_a_ramp_slope_is_per_image_width_whatever_the_direction() -> None:
    y, x = _grid()
    along_x = feature_dict(0.5 + 0.3 * (x - 0.5))["ramp_slope"]
    diagonal = feature_dict(0.5 + 0.3 * ((x + y) / np.sqrt(2) - 0.5))["ramp_slope"]
    assert along_x == pytest.approx(0.3, rel=1e-6)
    assert diagonal == pytest.approx(0.3, rel=1e-6)


def test_added_noise_raises_the_noise_power() -> None:
    clean = feature_dict(smooth())
    light = feature_dict(noisy(smooth(), 0.02))
    heavy = feature_dict(noisy(smooth(), 0.08))
    for name in ("noise_sigma", "noise_to_signal", "band_top"):
        assert clean[name] < light[name] < heavy[name], name
    assert heavy["neighbour_corr"] < clean["neighbour_corr"]
    assert heavy["noise_sigma"] == pytest.approx(np.log(0.08), abs=0.15)


def test_blur_raises_the_blur_ratio_and_steepens_the_spectrum() -> None:
    from ptychobench.features import gaussian_blur

    sharp = noisy(smooth(), 0.03)
    blurred = gaussian_blur(sharp, 2.0)
    before, after = feature_dict(sharp), feature_dict(blurred)
    assert after["blur_ratio"] > before["blur_ratio"] + 0.3
    assert after["spectral_slope"] < before["spectral_slope"] - 1.0


def test_a_vortex_raises_the_vortex_count() -> None:
    y, x = _grid()
    vortex = (np.angle((x - 0.503) + 1j * (y - 0.471)) + np.pi) / (2 * np.pi)
    pair = (
        np.angle(((x - 0.403) + 1j * (y - 0.501)) * np.conj((x - 0.603) + 1j * (y - 0.501))) + np.pi
    ) / (2 * np.pi)
    plain = feature_dict(smooth())
    assert plain["vortex_density"] == 0
    assert plain["vortex_density_smooth"] == 0
    for image in (vortex, pair):
        measured = feature_dict(image)
        assert measured["vortex_density"] > 0
        assert measured["vortex_density_smooth"] > 0
        assert measured["wrap_fraction"] > 0
    assert feature_dict(pair)["vortex_density"] > feature_dict(vortex)["vortex_density"]


def test_row_displacements_raise_the_line_features() -> None:
    image = smooth()
    lagged = image.copy()
    for top in range(0, N, 4):
        lagged[top : top + 4] = np.roll(image[top : top + 4], 2 * (top // 4 % 2), axis=1)
    before, after = feature_dict(image), feature_dict(lagged)
    assert after["row_shift_excess"] > before["row_shift_excess"] + 0.3
    assert after["gradient_anisotropy"] > before["gradient_anisotropy"]


def test_integer_upsampling_leaves_the_features_unchanged() -> None:
    image = noisy(smooth(), 0.03)
    big = np.kron(image, np.ones((2, 2)))
    np.testing.assert_allclose(image_features(big), image_features(image), atol=1e-9)


@pytest.mark.parametrize("size", [96, 200])
def test_features_survive_resizing_within_reason(size: int) -> None:
    """Resampled copies of a large smooth image keep the size-free features close."""
    image = smooth(n=400, seed=3)
    _, x = _grid(400)
    image = image + 0.15 * (x - 0.5)
    reference = feature_dict(image)
    resized = feature_dict(resample(image, (size, size)))
    for name in ("inner_mean", "inner_std", "ramp_slope", "ramp_r2", "lowpass_std", "entropy"):
        assert resized[name] == pytest.approx(reference[name], abs=0.03), name
    for name in ("band_low", "band_mid_low"):
        assert resized[name] == pytest.approx(reference[name], abs=0.3), name


def test_non_square_images_are_accepted() -> None:
    assert image_features(np.full((60, 90), 0.5)).shape == (len(FEATURE_NAMES),)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 3)), "2-D"),
        (np.zeros((8, 8)), "too small"),
        (np.full((32, 32), np.nan), "non-finite"),
    ],
    ids=["colour", "tiny", "nan"],
)
def test_unusable_images_are_refused(image: FloatArray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        image_features(image)


def test_a_constant_image_gives_finite_features() -> None:
    assert np.isfinite(image_features(np.full((64, 64), 0.3))).all()
