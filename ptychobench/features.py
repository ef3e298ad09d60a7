"""Hand-made image features that carry the physics of the artifact labels.

The diagnosis service's ``classifier`` backend (see `ptychobench.classifier`) reads
nothing but the reconstruction's image: no ground truth, no reconstruction parameters.
Each feature here is something an expert would look for in a phase image, measured so
that it does not depend on the image's size:

- the image is first resampled to a canonical ``CANONICAL_SIZE`` square (area averaging
  when shrinking, linear interpolation when enlarging), so frequencies are in cycles per
  canonical pixel and lengths in fractions of the image;
- most features are taken on the central ``INNER`` crop, which lies inside the scanned
  area of a reconstruction (the rim, seen by few probe positions, and the unscanned
  border are left out); a few describe the border on purpose.

The phase images of PtychoBench are 8-bit, with the 1–99 % percentiles of the scanned
area's phase stretched to 0–1 (`ptychobench.quality.phase_image`), so absolute
contrast is normalised away: features are shapes of histograms, spectra and gradients,
not raw levels. Heavy-tailed quantities are returned as logarithms so that a linear
model on standardised features treats them sensibly.

`FEATURE_DOCS` names every feature with the physics it captures, in the order
`image_features` returns them (`FEATURE_NAMES`).

Numpy only (``numpy.fft`` included): the service runs this in-process.

Why one module of 500-odd lines: ``FEATURE_DOCS`` and the functions that measure each
feature are one list read in one order (the classifier's columns); keeping the
description beside the measurement is what keeps them in step. The helpers
(resampling, blur, spectra) are small and used only here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from ptychobench.sim.metrics import residue_count

FloatArray = npt.NDArray[np.float64]

CANONICAL_SIZE: Final = 128
"""Side of the square every image is resampled to before it is measured."""
INNER: Final = (0.2, 0.8)
"""The central crop (fractions of each side) that lies inside the scanned area."""
_EPS: Final = 1e-12

FEATURE_DOCS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # --- grey levels (contrast, clipping, the unscanned border) -------------------
        "inner_mean": "Mean grey level inside: where the object's phase sits in the "
        "1-99 % stretch (a phase offset or a large feature shifts it).",
        "inner_std": "Standard deviation inside: object contrast against the stretch; "
        "low when a few outliers set the stretch and the object is flat (Low contrast).",
        "inner_iqr": "Interquartile range inside: contrast of the bulk of the pixels, "
        "insensitive to the outliers that set the stretch.",
        "clip_fraction": "Share of inner pixels at 0 or 1: how much of the scanned area "
        "lies beyond the 1-99 % stretch (spiky noise, vortices, wild pixels).",
        "entropy": "Entropy of the inner histogram (32 bins, 1 = uniform): a featureless "
        "or low-contrast phase concentrates in a few bins.",
        "skewness": "Skewness of the inner histogram: sparse strong features on a flat "
        "background (particles) versus a dense texture.",
        "log_kurtosis": "log kurtosis of the inner histogram: heavy tails from spikes "
        "and singular pixels.",
        "border_level": "Median grey level of the outer frame: the unscanned object's "
        "phase (zero) relative to the scanned area's stretch; far from the middle when "
        "the scanned area's phase is offset or ramped.",
        "flat_fraction": "Share of the image within 1.5 grey levels of the border level: "
        "the unscanned, untouched area (the scan's extent).",
        "rim_std": "Standard deviation of the band between the inner crop and the outer "
        "frame, over the inner one: ripples and rings at the edge of the scan (halo, "
        "missing low frequencies, edge divergence).",
        # --- spectrum -----------------------------------------------------------------
        "band_low": "log share of inner power below 0.04 cycles/px (large-scale "
        "variation: background, ramps, halos).",
        "band_mid_low": "log share of inner power in 0.04-0.1 cycles/px (object "
        "features of 10-25 px).",
        "band_mid_high": "log share of inner power in 0.1-0.2 cycles/px (fine "
        "structure; scan-grid periodicity of a few-pixel step lands here).",
        "band_high": "log share of inner power in 0.2-0.35 cycles/px (edges and noise).",
        "band_top": "log share of inner power above 0.35 cycles/px (pixel-level "
        "noise; removed by blur).",
        "spectral_slope": "Slope of log radial power against log frequency over "
        "0.03-0.4 cycles/px: steep when blurred, flat when noisy.",
        "spectral_flatness": "log of geometric over arithmetic mean of the power above "
        "0.05 cycles/px: 0 for white noise (No clear structure), very negative for "
        "structured images.",
        "peak_ratio": "log10 of the largest spectral peak above 0.05 cycles/px over the "
        "median power of its frequency ring: periodic structure of any orientation.",
        "axis_peak_ratio": "The same, restricted to frequencies on the two axes: a "
        "raster scan's grid artifacts are periodic along the scan axes.",
        "peak_count": "log(1 + number of spectral bins above 0.05 cycles/px that exceed "
        "20 times their ring's median), per 1000 bins: how many periodic components.",
        "axis_power": "log share of power above 0.05 cycles/px that lies on the "
        "frequency axes (within one bin): axis-aligned stripes, lines and grids.",
        # --- noise, sharpness, blur -----------------------------------------------------
        "noise_sigma": "log of the pixel noise estimated from a Laplacian-like 3x3 "
        "kernel that cancels smooth structure (Immerkaer's estimator), in grey levels.",
        "noise_to_signal": "log of noise_sigma over the inner standard deviation: how "
        "much of the contrast is pixel noise (Noisy artifacts).",
        "neighbour_corr": "Correlation of adjacent pixels (mean of x and y): near 1 "
        "when smooth or blurred, low when noise dominates.",
        "neighbour_corr_4": "Correlation of pixels 4 apart: the correlation length of "
        "the structure (short for noise-like, featureless images).",
        "gradient_mean": "log mean gradient magnitude over the inner standard "
        "deviation: edge density relative to contrast.",
        "gradient_p99": "log 99th percentile of the gradient magnitude over its "
        "median: sharp edges stand out of a blurred or noisy field.",
        "blur_ratio": "Gradient energy after a Gaussian blur of 1 px over the gradient "
        "energy before: near 1 for an already blurred image (Blurring), small for "
        "sharp or noisy ones.",
        # --- lines (fly-scan line lag) --------------------------------------------------
        "gradient_anisotropy": "log of gradient energy across rows (d/dy) over along "
        "rows (d/dx): row-wise artifacts make the vertical derivative large.",
        "row_shift_rms": "rms of the detrended shift (px) between neighbouring 4-row "
        "bands, found by cross-correlating their profiles: rows displaced along the "
        "fast axis zig-zag (Line artifacts).",
        "row_shift_excess": "row_shift_rms minus the same measured between 4-column "
        "bands: the row-only part of the zig-zag (structure itself shifts both ways).",
        "row_mean_excess": "log of the std of detrended row means over the std of "
        "detrended column means: horizontal streaks.",
        # --- ramps and background -------------------------------------------------------
        "ramp_slope": "Slope of the plane fitted to the inner grey levels, in grey "
        "levels per image width: a linear phase ramp (Phase ramp).",
        "ramp_r2": "Share of inner variance the plane explains.",
        "quadratic_r2": "Extra share of inner variance explained by adding second-order "
        "terms to the plane: curved, non-uniform background.",
        "lowpass_std": "Standard deviation of the inner image low-passed at 1/16 of "
        "the image (after the plane is removed) over the inner std: slowly varying "
        "background (Non-uniform background, probe drift).",
        "block_mean_std": "Std of the means of a 4x4 grid of inner blocks over the "
        "inner std: patchy background.",
        "band_pass_ratio": "log energy of a difference of Gaussians at 2-4 px over one "
        "at 4-8 px: halos (missing low frequencies) suppress the coarse band.",
        # --- local distortion ------------------------------------------------------------
        "local_std_cv": "Coefficient of variation of the standard deviation of a 4x4 "
        "grid of inner blocks: some regions distorted or washed out, others not.",
        "local_sharpness_cv": "Coefficient of variation of the blocks' gradient "
        "energy: sharpness varying across the field (local distortion, position "
        "errors).",
        # --- phase singularities --------------------------------------------------------
        "wrap_fraction": "Share of neighbour steps larger than half the grey range: "
        "phase jumps (a wrapped phase, a vortex's branch cut).",
        "vortex_density": "log(1 + phase vortices per 1000 px) of the inner image read "
        "as a phase 2*pi*grey: 2x2 loops whose wrapped steps sum to +-2*pi.",
        "vortex_density_smooth": "The same after smoothing the complex field "
        "exp(2*pi*i*grey) over 3x3: noise-made vortex pairs annihilate, true "
        "singularities (Singularity artifacts) survive.",
    }
)
"""Feature name -> the physics it captures, in the order `image_features` returns."""

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(FEATURE_DOCS)


def image_features(image: npt.ArrayLike) -> FloatArray:
    """Features of a 2-D grey image with values in [0, 1], in `FEATURE_NAMES` order.

    Any size from 16 x 16 up; values outside [0, 1] are clipped, non-finite values
    refused (``ValueError``).
    """
    values = feature_dict(image)
    return np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)


def feature_dict(image: npt.ArrayLike) -> dict[str, float]:
    """`image_features` as a name -> value mapping."""
    full = canonical(image)
    n = full.shape[0]
    lo, hi = round(INNER[0] * n), round(INNER[1] * n)
    inner = full[lo:hi, lo:hi]
    out: dict[str, float] = {}
    out.update(_levels(full, inner, lo, hi))
    out.update(_spectrum(inner))
    out.update(_sharpness(inner))
    out.update(_lines(inner))
    out.update(_background(inner))
    out.update(_local(inner))
    out.update(_vortices(inner))
    missing = set(FEATURE_NAMES).symmetric_difference(out)
    if missing:  # pragma: no cover - a programming error
        raise RuntimeError(f"features out of step with FEATURE_NAMES: {sorted(missing)}")
    return {name: float(out[name]) for name in FEATURE_NAMES}


def canonical(image: npt.ArrayLike) -> FloatArray:
    """The image as float64 in [0, 1], resampled to ``CANONICAL_SIZE`` squared."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {a.shape}")
    if min(a.shape) < 16:
        raise ValueError(f"image too small to measure: {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("image has non-finite values")
    a = np.clip(a, 0.0, 1.0)
    return resample(a, (CANONICAL_SIZE, CANONICAL_SIZE))


def resample(image: FloatArray, shape: tuple[int, int]) -> FloatArray:
    """Separable resampling: area averaging along an axis that shrinks, linear
    interpolation (pixel centres aligned) along one that grows."""
    if image.shape == shape:
        return image.copy()
    rows = _resample_matrix(image.shape[0], shape[0])
    cols = _resample_matrix(image.shape[1], shape[1])
    out: FloatArray = rows @ image @ cols.T
    return out


def _resample_matrix(n_in: int, n_out: int) -> FloatArray:
    """(n_out, n_in) weights that take a length-n_in signal to length n_out."""
    if n_in == n_out:
        return np.eye(n_in)
    weights = np.zeros((n_out, n_in))
    if n_out < n_in:
        scale = n_in / n_out
        edges = np.arange(n_in + 1, dtype=np.float64)
        for j in range(n_out):
            start, stop = j * scale, (j + 1) * scale
            overlap = np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0, None)
            weights[j] = overlap / scale
        return weights
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    left = np.floor(x).astype(np.int64)
    right = np.minimum(left + 1, n_in - 1)
    frac = x - left
    weights[np.arange(n_out), left] += 1 - frac
    weights[np.arange(n_out), right] += frac
    return weights


# --- helpers ---------------------------------------------------------------------------


def gaussian_blur(image: FloatArray, sigma: float) -> FloatArray:
    """Gaussian low-pass by FFT on a reflect-padded copy (no wrap-around at the edges)."""
    pad = max(1, int(np.ceil(3 * sigma)))
    pad = min(pad, min(image.shape) - 1)
    padded = np.pad(image, pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * kernel, s=padded.shape)
    out: FloatArray = blurred[pad:-pad, pad:-pad]
    return out


def _gradients(image: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Central-difference derivatives (d/dy, d/dx) on the interior."""
    gy = 0.5 * (image[2:, 1:-1] - image[:-2, 1:-1])
    gx = 0.5 * (image[1:-1, 2:] - image[1:-1, :-2])
    return gy, gx


def _corr(a: FloatArray, b: FloatArray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b)) / den if den > _EPS else 1.0


def _log(value: float) -> float:
    return float(np.log(max(value, 1e-9)))


def _blocks(image: FloatArray, k: int = 4) -> list[FloatArray]:
    """The image cut into a k x k grid of blocks (the remainder rows/columns dropped)."""
    h, w = image.shape[0] // k, image.shape[1] // k
    return [image[i * h : (i + 1) * h, j * w : (j + 1) * w] for i in range(k) for j in range(k)]


def _cv(values: list[float]) -> float:
    v = np.asarray(values)
    return float(v.std() / (abs(v.mean()) + _EPS))


# --- feature groups ----------------------------------------------------------------------


def _levels(full: FloatArray, inner: FloatArray, lo: int, hi: int) -> dict[str, float]:
    n = full.shape[0]
    frame_width = max(1, round(0.03 * n))
    frame = np.concatenate(
        [
            full[:frame_width].ravel(),
            full[-frame_width:].ravel(),
            full[:, :frame_width].ravel(),
            full[:, -frame_width:].ravel(),
        ]
    )
    border = float(np.median(frame))
    rim = np.ones(full.shape, dtype=bool)
    rim[lo:hi, lo:hi] = False
    rim[:frame_width] = rim[-frame_width:] = False
    rim[:, :frame_width] = rim[:, -frame_width:] = False
    std = float(inner.std())
    centred = inner - inner.mean()
    q25, q75 = np.percentile(inner, [25, 75])
    hist, _ = np.histogram(inner, bins=32, range=(0.0, 1.0))
    p = hist[hist > 0] / inner.size
    return {
        "inner_mean": float(inner.mean()),
        "inner_std": std,
        "inner_iqr": float(q75 - q25),
        "clip_fraction": float(np.mean((inner <= 0.5 / 255) | (inner >= 254.5 / 255))),
        "entropy": float(-np.sum(p * np.log(p)) / np.log(32)),
        "skewness": float(np.mean(centred**3) / (std**3 + _EPS)),
        "log_kurtosis": _log(float(np.mean(centred**4) / (std**4 + _EPS))),
        "border_level": border,
        "flat_fraction": float(np.mean(np.abs(full - border) <= 1.5 / 255)),
        "rim_std": float(full[rim].std() / (std + _EPS)),
    }


def _power(image: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Power of the Hann-windowed, mean-free image; |fy|, |fx| and radius (cycles/px)."""
    h, w = image.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power: FloatArray = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    fy = np.abs(np.fft.fftfreq(h))[:, None] * np.ones((1, w))
    fx = np.abs(np.fft.fftfreq(w))[None, :] * np.ones((h, 1))
    return power, fy, fx, np.hypot(fy, fx)


def _spectrum(inner: FloatArray) -> dict[str, float]:
    power, fy, fx, radius = _power(inner)
    total = float(power.sum()) + _EPS

    def share(low: float, high: float) -> float:
        return _log(float(power[(radius >= low) & (radius < high)].sum()) / total)

    # radial profile for the slope: rings one frequency bin wide
    step = 1.0 / inner.shape[0]
    ring = np.floor(radius / step).astype(np.int64)
    counts = np.bincount(ring.ravel())
    sums = np.bincount(ring.ravel(), weights=power.ravel())
    freqs = (np.arange(counts.size) + 0.5) * step
    use = (counts > 0) & (freqs >= 0.03) & (freqs <= 0.4)
    profile = sums[use] / counts[use]
    slope = float(np.polyfit(np.log(freqs[use]), np.log(profile + _EPS), 1)[0])

    high = radius >= 0.05
    flatness = float(np.mean(np.log(power[high] + _EPS)) - np.log(np.mean(power[high]) + _EPS))

    ring_median = np.zeros(counts.size)
    for r in np.unique(ring[high]):
        ring_median[r] = np.median(power[ring == r])
    relative = power / (ring_median[ring] + _EPS)
    search = high & (radius <= 0.45)
    on_axis = search & ((fy < 0.5 * step) | (fx < 0.5 * step))
    near_axis = high & ((fy < 1.5 * step) | (fx < 1.5 * step))
    return {
        "band_low": share(_EPS, 0.04),
        "band_mid_low": share(0.04, 0.1),
        "band_mid_high": share(0.1, 0.2),
        "band_high": share(0.2, 0.35),
        "band_top": share(0.35, 1.0),
        "spectral_slope": slope,
        "spectral_flatness": flatness,
        "peak_ratio": float(np.log10(relative[search].max() + _EPS)),
        "axis_peak_ratio": float(np.log10(relative[on_axis].max() + _EPS)),
        "peak_count": float(np.log1p(1000.0 * np.mean(relative[search] > 20.0))),
        "axis_power": _log(float(power[near_axis].sum()) / (float(power[high].sum()) + _EPS)),
    }


def _sharpness(inner: FloatArray) -> dict[str, float]:
    std = float(inner.std()) + _EPS
    kernel_response = (
        inner[:-2, :-2]
        - 2 * inner[:-2, 1:-1]
        + inner[:-2, 2:]
        - 2 * inner[1:-1, :-2]
        + 4 * inner[1:-1, 1:-1]
        - 2 * inner[1:-1, 2:]
        + inner[2:, :-2]
        - 2 * inner[2:, 1:-1]
        + inner[2:, 2:]
    )
    sigma = float(np.sqrt(np.pi / 2) * np.mean(np.abs(kernel_response)) / 6.0)
    gy, gx = _gradients(inner)
    magnitude = np.hypot(gy, gx)
    blurred = gaussian_blur(inner, 1.0)
    by, bx = _gradients(blurred)
    energy = float(np.sum(gy**2 + gx**2)) + _EPS
    corr_1 = 0.5 * (_corr(inner[1:], inner[:-1]) + _corr(inner[:, 1:], inner[:, :-1]))
    corr_4 = 0.5 * (_corr(inner[4:], inner[:-4]) + _corr(inner[:, 4:], inner[:, :-4]))
    return {
        "noise_sigma": _log(sigma),
        "noise_to_signal": _log(sigma / std),
        "neighbour_corr": corr_1,
        "neighbour_corr_4": corr_4,
        "gradient_mean": _log(float(magnitude.mean()) / std),
        "gradient_p99": _log(
            float(np.percentile(magnitude, 99)) / (float(np.median(magnitude)) + 1e-6)
        ),
        "blur_ratio": float(np.sum(by**2 + bx**2)) / energy,
    }


def _band_shifts(image: FloatArray, band: int = 4, max_lag: int = 3) -> float:
    """rms of the detrended sub-pixel shifts between neighbouring row bands."""
    profiles = [
        image[top : top + band].mean(axis=0) for top in range(0, image.shape[0] - band + 1, band)
    ]
    shifts = []
    for a, b in itertools.pairwise(profiles):
        a = a - a.mean()
        b = b - b.mean()
        if a.std() < 1e-4 or b.std() < 1e-4:
            continue
        n = a.size
        xc = np.real(np.fft.ifft(np.fft.fft(a, 2 * n) * np.conj(np.fft.fft(b, 2 * n))))
        xc = np.concatenate([xc[-max_lag:], xc[: max_lag + 1]])  # lags -max_lag .. max_lag
        i = int(np.argmax(xc))
        offset = 0.0
        if 0 < i < xc.size - 1:
            denom = xc[i - 1] - 2 * xc[i] + xc[i + 1]
            offset = 0.5 * (xc[i - 1] - xc[i + 1]) / denom if denom != 0 else 0.0
        shifts.append(i - max_lag + offset)
    if len(shifts) < 3:
        return 0.0
    s = np.asarray(shifts)
    k = np.arange(s.size, dtype=np.float64)
    s = s - np.polyval(np.polyfit(k, s, 1), k)
    return float(np.sqrt(np.mean(s**2)))


def _detrended_std(values: FloatArray) -> float:
    k = np.arange(values.size, dtype=np.float64)
    return float(np.std(values - np.polyval(np.polyfit(k, values, 1), k)))


def _lines(inner: FloatArray) -> dict[str, float]:
    gy, gx = _gradients(inner)
    rows = _band_shifts(inner)
    cols = _band_shifts(inner.T)
    return {
        "gradient_anisotropy": _log((float(np.sum(gy**2)) + _EPS) / (float(np.sum(gx**2)) + _EPS)),
        "row_shift_rms": rows,
        "row_shift_excess": rows - cols,
        "row_mean_excess": _log(
            (_detrended_std(inner.mean(axis=1)) + 1e-6)
            / (_detrended_std(inner.mean(axis=0)) + 1e-6)
        ),
    }


def _background(inner: FloatArray) -> dict[str, float]:
    h, w = inner.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y = (y - (h - 1) / 2) / CANONICAL_SIZE  # in image widths, so the slope is per width
    x = (x - (w - 1) / 2) / CANONICAL_SIZE
    values = inner.ravel()
    total = float(np.sum((values - values.mean()) ** 2)) + _EPS
    plane = np.stack([np.ones(h * w), x.ravel(), y.ravel()], axis=1)
    quad = np.concatenate(
        [plane, np.stack([x.ravel() ** 2, y.ravel() ** 2, (x * y).ravel()], 1)], 1
    )
    coef_plane, *_ = np.linalg.lstsq(plane, values, rcond=None)
    coef_quad, *_ = np.linalg.lstsq(quad, values, rcond=None)
    resid_plane = values - plane @ coef_plane
    resid_quad = values - quad @ coef_quad
    r2_plane = 1.0 - float(np.sum(resid_plane**2)) / total
    r2_quad = 1.0 - float(np.sum(resid_quad**2)) / total
    std = float(inner.std()) + _EPS
    flat = resid_plane.reshape(h, w)
    low = gaussian_blur(flat, CANONICAL_SIZE / 16)
    fine = gaussian_blur(inner, 2.0) - gaussian_blur(inner, 4.0)
    coarse = gaussian_blur(inner, 4.0) - gaussian_blur(inner, 8.0)
    block_means = [float(b.mean()) for b in _blocks(inner)]
    return {
        "ramp_slope": float(np.hypot(coef_plane[1], coef_plane[2])),
        "ramp_r2": r2_plane,
        "quadratic_r2": r2_quad - r2_plane,
        "lowpass_std": float(low.std()) / std,
        "block_mean_std": float(np.std(block_means)) / std,
        "band_pass_ratio": _log(
            (float(np.sum(fine**2)) + _EPS) / (float(np.sum(coarse**2)) + _EPS)
        ),
    }


def _local(inner: FloatArray) -> dict[str, float]:
    stds = [float(b.std()) for b in _blocks(inner)]
    energies = []
    for block in _blocks(inner):
        gy, gx = _gradients(block)
        energies.append(float(np.mean(gy**2 + gx**2)))
    return {"local_std_cv": _cv(stds), "local_sharpness_cv": _cv(energies)}


def _vortices(inner: FloatArray) -> dict[str, float]:
    phase = 2 * np.pi * inner
    field = np.exp(1j * phase)
    padded = np.pad(field, 1, mode="edge")
    smooth = sum(
        padded[1 + dy : 1 + dy + inner.shape[0], 1 + dx : 1 + dx + inner.shape[1]]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    loops = (inner.shape[0] - 1) * (inner.shape[1] - 1)
    steps = np.concatenate([np.abs(np.diff(inner, axis=0)).ravel(), np.abs(np.diff(inner)).ravel()])
    return {
        "wrap_fraction": float(np.mean(steps > 0.5)),
        "vortex_density": float(np.log1p(1000.0 * residue_count(phase) / loops)),
        "vortex_density_smooth": float(
            np.log1p(1000.0 * residue_count(np.angle(np.asarray(smooth))) / loops)
        ),
    }
