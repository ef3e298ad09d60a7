"""Simulated beamlines: probe, partial coherence and scan pattern of each instrument.

An instrument fixes what an experiment looks like before the sample is put in: photon
energy, the optic that makes the probe (a zone plate near focus, the same zone plate far
out of focus, or a Gaussian-like focus), the scan (Fermat spiral or snake raster), step,
dose and how coherent the beam is. Names follow real APS instruments because the
benchmark's metadata does; the numbers are typical, not a facility's specification.

Units: probe and scan live on the object's pixel grid (``pixel_size_nm`` per pixel), and
the probe is the field at the sample in the convention of Pty-chi (see ``forward``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

ProbeKind = Literal["zone_plate", "defocused", "gaussian"]
ScanKind = Literal["fermat", "raster", "raster_jitter", "line"]
"""``raster`` is a snake (boustrophedon) raster, ``line`` a raster whose rows all run the
same way (fly scans), ``raster_jitter`` a snake raster with random offsets of up to a
fifth of a step (stage error the scan knows about)."""
ComplexArray = npt.NDArray[np.complex64]
FloatArray = npt.NDArray[np.float64]

_HC_KEV_NM: Final = 1.2398419843320026  # h·c in keV·nm


@dataclass(frozen=True)
class Instrument:
    """One beamline configuration.

    ``pupil_radius`` is the numerical aperture in detector units, NA·dx/λ (cycles per
    object pixel): it sets the focal spot (≈ 0.5/pupil_radius pixels) and, with the
    defocus, the size of the beam on the sample (≈ 2·pupil_radius·λ·z/dx² pixels).
    ``coherent_modes`` is how many mutually incoherent probe modes the true beam has, and
    ``coherence`` the share of power in the first of them.
    """

    name: str
    energy_kev: float
    probe_kind: ProbeKind
    scan_kind: ScanKind
    step_px: float
    photons_per_pattern: float
    coherent_modes: int
    pattern_size: int = 64
    pixel_size_nm: float = 10.0
    defocus_um: float = 0.0
    pupil_radius: float = 0.18
    central_stop: float = 0.35
    coherence: float = 0.9

    @property
    def wavelength_m(self) -> float:
        return wavelength_m(self.energy_kev)


def wavelength_m(energy_kev: float) -> float:
    """X-ray wavelength in metres for a photon energy in keV."""
    return _HC_KEV_NM / energy_kev * 1e-9


INSTRUMENTS: Final[dict[str, Instrument]] = {
    instrument.name: instrument
    for instrument in (
        Instrument(
            "APS-2IDE-XFM",
            10.0,
            "zone_plate",
            "fermat",
            step_px=8.0,
            photons_per_pattern=1e6,
            coherent_modes=2,
            defocus_um=32.0,
            pupil_radius=0.25,
            coherence=0.9,
        ),
        Instrument(
            "Velociprobe",
            8.8,
            "defocused",
            "raster",
            step_px=11.0,
            photons_per_pattern=6e5,
            coherent_modes=3,
            defocus_um=35.0,
            pupil_radius=0.3,
            coherence=0.8,
        ),
        Instrument(
            "Bionanoprobe",
            10.0,
            "zone_plate",
            "fermat",
            step_px=6.0,
            photons_per_pattern=1e5,
            coherent_modes=2,
            defocus_um=20.0,
            pupil_radius=0.25,
            coherence=0.9,
        ),
        Instrument(
            "2-ID-D",
            10.0,
            "zone_plate",
            "raster",
            step_px=8.0,
            photons_per_pattern=3e5,
            coherent_modes=1,
            defocus_um=40.0,
            pupil_radius=0.2,
            coherence=1.0,
        ),
        Instrument(
            "26-ID-C",
            9.0,
            "gaussian",
            "fermat",
            step_px=6.0,
            photons_per_pattern=4e5,
            coherent_modes=2,
            defocus_um=40.0,
            pupil_radius=0.15,
            coherence=0.85,
        ),
    )
}


SHIFTED_INSTRUMENTS: Final[dict[str, Instrument]] = {
    instrument.name: instrument
    for instrument in (
        Instrument(
            "ESRF-ID16A",
            17.0,
            "gaussian",
            "fermat",
            step_px=6.0,
            photons_per_pattern=2e6,
            coherent_modes=1,
            defocus_um=60.0,
            pupil_radius=0.25,
            coherence=1.0,
        ),
        Instrument(
            "PETRA-P06",
            15.0,
            "zone_plate",
            "raster_jitter",
            step_px=9.0,
            photons_per_pattern=5e5,
            coherent_modes=2,
            defocus_um=45.0,
            pupil_radius=0.22,
            coherence=0.85,
        ),
        Instrument(
            "NSLS-II-HXN",
            12.0,
            "defocused",
            "line",
            step_px=7.5,
            photons_per_pattern=2e5,
            coherent_modes=3,
            defocus_um=25.0,
            pupil_radius=0.28,
            coherence=0.75,
        ),
    )
}
"""Beamlines that only the shifted test set uses: other optics, energies and scans."""


def instrument_named(name: str) -> Instrument:
    """An instrument of :data:`INSTRUMENTS` or :data:`SHIFTED_INSTRUMENTS` by name."""
    found = INSTRUMENTS.get(name) or SHIFTED_INSTRUMENTS.get(name)
    if found is None:
        known = [*INSTRUMENTS, *SHIFTED_INSTRUMENTS]
        raise ValueError(f"unknown instrument {name!r}; expected one of {known}")
    return found


def _fresnel_number_px(instrument: Instrument, defocus_um: float) -> float:
    """λ·z/dx²: the defocus in the pixel units of the angular-spectrum propagator."""
    dx = instrument.pixel_size_nm * 1e-9
    return instrument.wavelength_m * defocus_um * 1e-6 / (dx * dx)


def propagate(field: npt.ArrayLike, fresnel_number_px: float) -> ComplexArray:
    """Angular-spectrum (paraxial) propagation of a 2D field by λz/dx² = ``fresnel_number_px``."""
    array = np.asarray(field, dtype=np.complex128)
    fy = np.fft.fftfreq(array.shape[-2])[:, None]
    fx = np.fft.fftfreq(array.shape[-1])[None, :]
    kernel = np.exp(-1j * np.pi * fresnel_number_px * (fy**2 + fx**2))
    return np.fft.ifft2(np.fft.fft2(array) * kernel).astype(np.complex64)


def make_probe(
    instrument: Instrument,
    size: int,
    rng: np.random.Generator,
    defocus: float | None = None,
    aberration_rad: float = 0.3,
) -> ComplexArray:
    """The instrument's probe on a ``(size, size)`` grid, normalised to Σ|p|² = 1.

    ``defocus`` (µm) overrides the instrument's; a wrong defocus makes a poor starting
    probe. The pupil carries small random low-order aberrations (``aberration_rad``
    rms-ish), so probes differ from seed to seed like real optics do.
    """
    if size < 8 or size % 2:
        raise ValueError(f"probe size must be even and at least 8, got {size}")
    defocus_um = instrument.defocus_um if defocus is None else defocus
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    rho = np.hypot(fy, fx)
    radius = instrument.pupil_radius
    if instrument.probe_kind == "gaussian":
        pupil = np.exp(-0.5 * (rho / radius) ** 2)
    else:
        edge = 1.0 / size  # one frequency sample of soft edge against ringing
        outer = np.clip((radius - rho) / edge + 0.5, 0.0, 1.0)
        inner = np.clip((rho - instrument.central_stop * radius) / edge + 0.5, 0.0, 1.0)
        pupil = outer * inner
    extent = 2.5 * radius if instrument.probe_kind == "gaussian" else radius
    u, v = fx / extent, fy / extent
    terms = (u * u - v * v, 2 * u * v, (u * u + v * v) * u, (u * u + v * v) * v)
    aberration = sum(c * t for c, t in zip(rng.normal(0, aberration_rad, 4), terms, strict=True))
    pupil = pupil * np.exp(1j * aberration)
    # the pupil as seen on the detector, defocused: focus = inverse FFT, centred
    chirp = np.exp(-1j * np.pi * _fresnel_number_px(instrument, defocus_um) * rho**2)
    probe = np.fft.fftshift(np.fft.ifft2(pupil * chirp))
    probe /= np.sqrt(np.sum(np.abs(probe) ** 2))
    return probe.astype(np.complex64)


def mode_powers(n_modes: int, coherence: float) -> FloatArray:
    """Relative powers of ``n_modes`` modes: ``coherence`` in the first, the rest halving."""
    if n_modes < 1:
        raise ValueError("n_modes must be at least 1")
    if not 0 < coherence <= 1:
        raise ValueError(f"coherence must lie in (0, 1], got {coherence}")
    if n_modes == 1:
        return np.ones(1)
    rest = 0.5 ** np.arange(n_modes - 1)
    return np.concatenate([[coherence], (1 - coherence) * rest / rest.sum()])


def make_probe_modes(probe: npt.ArrayLike, n_modes: int, coherence: float) -> ComplexArray:
    """Orthogonal probe modes ``(n_modes, h, w)`` with decreasing power.

    Mode 0 has the shape of ``probe``; higher modes are the probe times low-order
    Hermite-like polynomials, orthogonalised (the usual model of a partially coherent
    beam). Their powers are :func:`mode_powers`, and they sum to the power of ``probe``.
    """
    p = np.asarray(probe, dtype=np.complex128)
    powers = mode_powers(n_modes, coherence)
    h, w = p.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    weight = np.abs(p) ** 2
    total = weight.sum()
    cy, cx = (weight * y).sum() / total, (weight * x).sum() / total
    sy = np.sqrt((weight * (y - cy) ** 2).sum() / total) + 1e-9
    sx = np.sqrt((weight * (x - cx) ** 2).sum() / total) + 1e-9
    yy, xx = (y - cy) / sy, (x - cx) / sx
    multipliers = [np.ones_like(yy), xx, yy, xx * yy, xx * xx - 1, yy * yy - 1]
    while len(multipliers) < n_modes:
        k = len(multipliers)
        multipliers.append(xx ** (k % 3 + 1) * yy ** (k // 3))
    basis = np.stack([(m * p).ravel() for m in multipliers[:n_modes]], axis=1)
    q, _ = np.linalg.qr(basis)  # orthonormal columns; the first keeps the probe's shape
    phase = np.vdot(q[:, 0], p.ravel())
    q[:, 0] *= phase / abs(phase)
    modes: ComplexArray = (q.T * np.sqrt(powers * total)[:, None]).reshape(n_modes, h, w)
    return modes.astype(np.complex64)


def make_scan(
    instrument: Instrument,
    object_size: int,
    probe_size: int,
    rng: np.random.Generator,
    margin: float = 2.0,
    step_px: float | None = None,
) -> FloatArray:
    """Probe positions ``(N, 2)`` as (y, x) pixels relative to the object centre.

    The convention is Pty-chi's: position (0, 0) puts the probe's centre on the
    object's centre, and every probe footprint stays ``margin`` pixels inside the object.
    Fermat spirals start at a random angle; see :data:`ScanKind` for the rasters.
    """
    step = instrument.step_px if step_px is None else step_px
    half = (object_size - probe_size) / 2 - 0.5 - margin
    if half < 0:
        raise ValueError(
            f"object of {object_size} px cannot hold a {probe_size} px probe with margin {margin}"
        )
    if instrument.scan_kind == "fermat":
        c = step * np.sqrt(np.sqrt(3) / (2 * np.pi))  # same point density as a hex grid
        n_max = int((np.sqrt(2) * half / c) ** 2) + 1
        n = np.arange(n_max)
        radius = c * np.sqrt(n)
        angle = n * np.pi * (3 - np.sqrt(5)) + rng.uniform(0, 2 * np.pi)
        points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
        points = points[np.all(np.abs(points) <= half, axis=1)]
    else:
        n_side = int(np.floor(2 * half / step)) + 1
        axis = (np.arange(n_side) - (n_side - 1) / 2) * step
        snake = instrument.scan_kind != "line"
        rows = [
            np.stack([np.full(n_side, row), axis[::-1] if snake and i % 2 else axis], axis=1)
            for i, row in enumerate(axis)
        ]
        points = np.concatenate(rows)
        if instrument.scan_kind == "raster_jitter":
            points = np.clip(points + rng.uniform(-0.2, 0.2, points.shape) * step, -half, half)
    return points.astype(np.float64)


def scan_family(kind: str) -> str:
    """``fermat`` or ``raster`` (every row-by-row scan): what fault recipes ask for."""
    return "fermat" if kind == "fermat" else "raster"
