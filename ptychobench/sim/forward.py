"""Far-field ptychography forward model, with the hooks that faults need.

The model is Pty-chi's own (checked against its forward operator in the tests):

- positions are (y, x) pixels relative to the object centre; the probe window of
  position ``p`` starts at row/column ``round(p) + (H - h) / 2`` (even sizes), and the
  sub-pixel rest ``p − round(p)`` shifts the probe by a Fourier shift;
- exit wave = probe mode × object patch; far field = unnormalised ``fft2`` (so
  Σ intensity = h·w·Σ|exit wave|², Parseval); intensities of incoherent modes add;
- patterns are intensities (counts, not amplitudes) with the zero frequency in the centre
  (``fftshift``), which is what Pty-chi expects with ``data_options.fft_shift=True``.

The probe is scaled so that an empty object gives ``photons`` counts per pattern. Fault
hooks act where the physics puts them: position errors and flux changes before the
photons are counted, detector effects (hot pixels, saturation) after, and data handling
mistakes (transposed patterns) last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex64]


@dataclass(frozen=True)
class DiffractionData:
    """Simulated measurement.

    ``patterns`` (N, h, w) float32 counts, zero frequency centred. ``positions`` are the
    nominal positions a reconstruction is given; ``true_positions`` the ones that made the
    data. ``probe`` is the true probe, modes (n_modes, h, w), scaled to the dose.
    ``flux`` is the per-pattern flux factor that was applied.
    """

    patterns: npt.NDArray[np.float32]
    positions: FloatArray
    true_positions: FloatArray
    probe: ComplexArray
    photons: float
    flux: FloatArray

    @property
    def n_positions(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def pattern_shape(self) -> tuple[int, int]:
        return int(self.patterns.shape[1]), int(self.patterns.shape[2])


def window_origin(
    position: npt.ArrayLike, object_shape: Sequence[int], probe_shape: Sequence[int]
) -> npt.NDArray[np.int64]:
    """Top-left pixel of the probe window for (N, 2) positions, as Pty-chi places it."""
    pos = np.rint(np.asarray(position, dtype=np.float64)).astype(np.int64)
    offset = np.array(
        [int(np.round(object_shape[i] / 2)) - probe_shape[i] // 2 for i in range(2)],
        dtype=np.int64,
    )
    return pos + offset


def fourier_shift(
    images: npt.NDArray[np.complex128], shifts: FloatArray
) -> npt.NDArray[np.complex128]:
    """Shift (N, ..., h, w) images by (N, 2) sub-pixel amounts (content moves by +shift)."""
    fy = np.fft.fftfreq(images.shape[-2])
    fx = np.fft.fftfreq(images.shape[-1])
    ramp = np.exp(
        -2j
        * np.pi
        * (
            shifts[:, 0, None, None] * fy[None, :, None]
            + shifts[:, 1, None, None] * fx[None, None, :]
        )
    )
    extra = (slice(None),) + (None,) * (images.ndim - 3) + (slice(None), slice(None))
    return np.fft.ifft2(np.fft.fft2(images) * ramp[extra])


def exit_waves(
    obj: npt.ArrayLike, probe_modes: npt.ArrayLike, positions: npt.ArrayLike
) -> npt.NDArray[np.complex128]:
    """Exit waves (N, n_modes, h, w) for a 2D object and (n_modes, h, w) probe modes."""
    o = np.asarray(obj, dtype=np.complex128)
    p = np.asarray(probe_modes, dtype=np.complex128)
    if p.ndim == 2:
        p = p[None]
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    h, w = p.shape[-2:]
    if h % 2 or w % 2 or o.shape[0] % 2 or o.shape[1] % 2:
        raise ValueError("object and probe sizes must be even (Pty-chi's integer grid)")
    origin = window_origin(pos, o.shape, (h, w))
    if (
        (origin < 0).any()
        or (origin[:, 0] + h > o.shape[0]).any()
        or (origin[:, 1] + w > o.shape[1]).any()
    ):
        raise ValueError("a probe window falls outside the object; use a larger object")
    rows = origin[:, 0, None] + np.arange(h)[None, :]
    cols = origin[:, 1, None] + np.arange(w)[None, :]
    patches = o[rows[:, :, None], cols[:, None, :]]  # (N, h, w)
    fraction = pos - np.rint(pos)
    probes = np.broadcast_to(p, (len(pos), *p.shape))
    if np.any(np.abs(fraction) > 1e-7):
        probes = fourier_shift(np.array(probes), fraction)
    waves: npt.NDArray[np.complex128] = probes * patches[:, None]
    return waves


def far_field_intensity(waves: npt.NDArray[np.complex128]) -> FloatArray:
    """Σ over modes of |fft2|², zero frequency centred: the noise-free pattern."""
    intensity = np.sum(np.abs(np.fft.fft2(waves)) ** 2, axis=1)
    return np.fft.fftshift(intensity, axes=(-2, -1))


def scale_probe(probe_modes: npt.ArrayLike, photons: float) -> ComplexArray:
    """Probe modes scaled so that an empty object gives ``photons`` counts per pattern."""
    p = np.asarray(probe_modes, dtype=np.complex128)
    if p.ndim == 2:
        p = p[None]
    n_pixels = p.shape[-1] * p.shape[-2]
    power = float(np.sum(np.abs(p) ** 2))
    scaled: ComplexArray = (p * np.sqrt(photons / (n_pixels * power))).astype(np.complex64)
    return scaled


def _edge_quadratic(h: int, w: int) -> FloatArray:
    """(r / half-width)² over an (h, w) window, 1 at the middle of its edges."""
    y = (np.arange(h) - h / 2) / (h / 2)
    x = (np.arange(w) - w / 2) / (w / 2)
    quadratic: FloatArray = y[:, None] ** 2 + x[None, :] ** 2
    return quadratic


def simulate(
    obj: npt.ArrayLike,
    probe_modes: npt.ArrayLike,
    positions: npt.ArrayLike,
    photons: float,
    rng: np.random.Generator,
    *,
    position_errors: npt.ArrayLike | None = None,
    flux: npt.ArrayLike | None = None,
    pattern_shift: tuple[int, int] | npt.ArrayLike = (0, 0),
    transpose: bool = False,
    hot_pixels: Sequence[tuple[int, int, float]] = (),
    saturation: float | None = None,
    beamstop_radius: float = 0.0,
    dead_pixels: npt.ArrayLike | None = None,
    probe_curvature: npt.ArrayLike | None = None,
    poisson: bool = True,
    batch: int = 64,
) -> DiffractionData:
    """Diffraction patterns of ``obj`` scanned by ``probe_modes`` at ``positions``.

    Fault hooks (all off by default):

    - ``position_errors`` (N, 2) px: the data are made at ``positions + position_errors``
      while the returned ``positions`` stay nominal.
    - ``flux`` (N,): per-pattern factor on the incident intensity (beam fluctuations).
    - ``pattern_shift``: (dy, dx) integer pixels, or (N, 2) per pattern: the beam centre
      on the detector moves (a mis-centred detector) — shifts the noise-free pattern.
    - ``beamstop_radius`` px: an unmasked central stop absorbs all counts inside it.
    - ``dead_pixels`` (h, w) bool: pixels that read zero (detector gaps), unmasked.
    - ``hot_pixels``: (row, col, counts) added to every frame (after the noise).
    - ``saturation``: counts are clipped at this level (a saturated detector).
    - ``transpose``: each pattern is stored transposed (a data handling mistake).
    - ``probe_curvature`` (N,) rad: the probe drifts during the scan; each pattern's probe
      gets a quadratic phase of this many radians at the window's edge (a focus drift).
    """
    probe = scale_probe(probe_modes, photons)
    nominal = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    n = len(nominal)
    true = nominal.copy()
    if position_errors is not None:
        true = true + np.asarray(position_errors, dtype=np.float64).reshape(n, 2)
    flux_factors = np.ones(n) if flux is None else np.asarray(flux, dtype=np.float64).reshape(n)
    if (flux_factors < 0).any():
        raise ValueError("flux factors must be non-negative")
    shifts = np.broadcast_to(np.asarray(pattern_shift, dtype=np.int64), (n, 2))

    h, w = probe.shape[-2:]
    detector_mask = np.ones((h, w), dtype=bool)
    if beamstop_radius > 0:
        y, x = np.mgrid[0:h, 0:w]
        detector_mask &= np.hypot(y - h // 2, x - w // 2) > beamstop_radius
    if dead_pixels is not None:
        detector_mask &= ~np.asarray(dead_pixels, dtype=bool)

    patterns = np.empty((n, h, w), dtype=np.float32)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        waves = exit_waves(obj, probe, true[start:stop])
        if probe_curvature is not None:
            curvature = np.asarray(probe_curvature, dtype=np.float64).reshape(n)[start:stop]
            waves *= np.exp(1j * curvature[:, None, None, None] * _edge_quadratic(h, w))
        expected = far_field_intensity(waves)
        expected *= flux_factors[start:stop, None, None]
        for i in range(stop - start):
            dy, dx = shifts[start + i]
            if dy or dx:
                expected[i] = np.roll(expected[i], (int(dy), int(dx)), axis=(0, 1))
        expected *= detector_mask
        counts = rng.poisson(expected).astype(np.float64) if poisson else expected
        for row, col, extra in hot_pixels:
            counts[:, row, col] += extra
        if saturation is not None:
            counts = np.minimum(counts, saturation)
        patterns[start:stop] = counts
    if transpose:
        patterns = np.ascontiguousarray(np.swapaxes(patterns, -1, -2))
    return DiffractionData(
        patterns=patterns,
        positions=nominal,
        true_positions=true,
        probe=probe,
        photons=float(photons),
        flux=flux_factors,
    )
