"""No-reference quality of a reconstruction: what can be measured without the truth.

A beamline has no true object, so the closed loop judges a change by the data-fit loss
and by these metrics of the reconstructed object alone, each taken in the scanned area
(:func:`ptychobench.sim.metrics.scan_mask`) after its mean phase is removed. They are
the truth-free counterparts of :mod:`ptychobench.sim.metrics` (which compares with the
true object), one per artifact family:

- ``phase_contrast`` — standard deviation of the phase, rad (low contrast, blur);
- ``amplitude_contrast`` — standard deviation of the amplitude over its mean;
- ``sharpness`` — share of the object's power in the mid band, 0.1–0.3 cycles/px
  (blurring lowers it);
- ``noise_power`` — share of the phase power above 0.3 cycles/px (noise, noisy edges);
- ``ramp_slope`` — the object's mean phase step between neighbours, rad/px (phase ramp;
  a specimen's own structure averages out);
- ``background`` — standard deviation of the strongly low-passed (σ 16 px) phase, rad
  (non-uniform background);
- ``grid_power`` — phase power at the scan grid's frequency and its harmonic, as a share
  of all of it (grid artifacts); the step is the scan's median neighbour distance;
- ``line_shift`` — rms x-shift of each 4-row band of the phase against the band above,
  detrended, px (line artifacts: zig-zag edges);
- ``residues`` — phase vortices per 1000 px (singularities).

Also :func:`phase_png`, the 8-bit phase image that the diagnosis service reads, made the
way the simulator makes its images.

Numpy only.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from ptychobench.images import encode_png
from ptychobench.sim.metrics import (
    _power_spectrum,
    crop,
    gaussian_blur,
    grid_power,
    line_shift,
    residues,
    scan_mask,
)

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

NO_REFERENCE_METRICS: Final[tuple[str, ...]] = (
    "phase_contrast",
    "amplitude_contrast",
    "sharpness",
    "noise_power",
    "ramp_slope",
    "background",
    "grid_power",
    "line_shift",
    "residues",
)


def phase_image(
    obj: npt.ArrayLike, mask: npt.NDArray[np.bool_]
) -> tuple[bytes, tuple[float, float]]:
    """The 8-bit phase PNG (phase about the scanned area's mean, its 1–99 % range to
    0–255) and the phase in rad that 0 and 255 stand for."""
    o = np.asarray(obj, dtype=np.complex128)
    inside = o[mask]
    reference = np.mean(inside)
    phase = np.angle(o * np.conj(reference / (abs(reference) + 1e-12)))
    low, high = np.percentile(phase[mask], [1, 99])
    scaled = np.clip((phase - low) / max(high - low, 1e-6), 0, 1)
    return encode_png(scaled), (round(float(low), 4), round(float(high), 4))


def phase_png(obj: npt.ArrayLike, mask: npt.NDArray[np.bool_]) -> bytes:
    """The phase image as the diagnosis service expects it (see :func:`phase_image`)."""
    return phase_image(obj, mask)[0]


def scan_step(positions_px: npt.ArrayLike) -> float:
    """The scan's typical step: median distance from each position to its nearest
    neighbour, px (positions in chunks so large scans stay in memory)."""
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    if len(pos) < 2:
        return 0.0
    nearest = np.empty(len(pos))
    for start in range(0, len(pos), 1024):
        block = pos[start : start + 1024]
        d = np.hypot(*(block[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
        d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest[start : start + len(block)] = d.min(axis=1)
    return float(np.median(nearest))


def _band_share(power: FloatArray, radius: FloatArray, low: float, high: float) -> float:
    total = float(power.sum())
    return float(power[(radius >= low) & (radius < high)].sum()) / total if total > 0 else 0.0


def no_reference_metrics(
    obj: npt.ArrayLike, positions_px: npt.ArrayLike, probe_px: int
) -> dict[str, float]:
    """Every metric of :data:`NO_REFERENCE_METRICS` for a reconstructed (H, W) object."""
    full = np.asarray(obj, dtype=np.complex128)
    if full.ndim == 3:
        full = full[0]
    mask = scan_mask(full.shape, positions_px, probe_px)
    r = np.asarray(crop(full, mask), dtype=np.complex128)
    mean = np.mean(r)
    phase = np.angle(r * np.conj(mean / (abs(mean) + 1e-12)))
    amplitude = np.abs(r)
    gy = np.angle(np.sum(r[1:, :] * np.conj(r[:-1, :])))
    gx = np.angle(np.sum(r[:, 1:] * np.conj(r[:, :-1])))
    power, radius = _power_spectrum(r)
    phase_power, _ = _power_spectrum(phase)
    step = scan_step(positions_px)
    band = 4
    return {
        "phase_contrast": float(phase.std()),
        "amplitude_contrast": float(amplitude.std() / (amplitude.mean() + 1e-12)),
        "sharpness": _band_share(power, radius, 0.1, 0.3),
        "noise_power": _band_share(phase_power, radius, 0.3, 0.75),
        "ramp_slope": float(np.hypot(gy, gx)),
        "background": float(gaussian_blur(phase, 16.0).std()),
        "grid_power": grid_power(phase, step) if step >= 2 else 0.0,
        "line_shift": line_shift(phase[band:], phase[:-band], band)
        if len(phase) > 4 * band
        else 0.0,
        "residues": residues(r),
    }


__all__ = [
    "NO_REFERENCE_METRICS",
    "no_reference_metrics",
    "phase_image",
    "phase_png",
    "scan_step",
]
