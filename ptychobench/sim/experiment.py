"""One simulated experiment, measured and reconstructed under a :class:`Setup`.

:func:`make_scene` draws the object, probe and scan of an experiment from a seed;
:func:`measure` makes its diffraction data under a setup (the same seed gives the same
photon noise, so a faulted and a clean measurement differ only by the fault);
:func:`run_setup` reconstructs with Pty-chi and measures the result against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ptychobench.sim.faults import OBJECT_SIZE, PROBE_SIZE, SCAN_MARGIN, Scene, Setup
from ptychobench.sim.forward import DiffractionData, simulate
from ptychobench.sim.instruments import Instrument, make_probe, make_probe_modes, make_scan
from ptychobench.sim.metrics import image_metrics, scan_mask
from ptychobench.sim.objects import make_object, object_metadata
from ptychobench.sim.reconstruct import ReconResult, reconstruct

ComplexArray = npt.NDArray[np.complex64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SceneData:
    """The arrays of a scene: true object and probe, nominal starting probe, scans."""

    scene: Scene
    seed: int
    object: ComplexArray
    probe: ComplexArray
    positions: FloatArray
    raster_positions: FloatArray


def make_scene(
    sample_type: str,
    instrument: Instrument,
    seed: int,
    phase_scale: float = 1.0,
    absorption_scale: float = 1.0,
) -> SceneData:
    """Object, probe and scan of one experiment, all drawn from ``seed`` (the scales
    make the specimen thicker or thinner than its type's usual range)."""
    rng = np.random.default_rng([seed, 1])
    obj = make_object(sample_type, OBJECT_SIZE, rng, phase_scale, absorption_scale)
    probe = make_probe(instrument, PROBE_SIZE, rng)
    positions = make_scan(instrument, OBJECT_SIZE, PROBE_SIZE, rng, margin=SCAN_MARGIN)
    raster = make_scan(_as_raster(instrument), OBJECT_SIZE, PROBE_SIZE, rng, margin=SCAN_MARGIN)
    scene = Scene(
        sample_type=sample_type,
        instrument=instrument,
        n_positions=len(positions),
        strong_phase=object_metadata(sample_type)["strong_phase"],
    )
    return SceneData(scene, seed, obj, probe, positions, raster)


def _as_raster(instrument: Instrument) -> Instrument:
    return replace(instrument, scan_kind="raster")


def scene_for(data: SceneData, setup: Setup) -> Scene:
    """The scene as the setup scans it (a raster override changes the positions)."""
    if setup.scan_override == "raster":
        return replace(
            data.scene,
            instrument=_as_raster(data.scene.instrument),
            n_positions=len(data.raster_positions),
        )
    return data.scene


def positions_for(data: SceneData, setup: Setup) -> FloatArray:
    return data.raster_positions if setup.scan_override == "raster" else data.positions


def start_probe(data: SceneData, setup: Setup) -> ComplexArray:
    """The probe a reconstruction starts from: the nominal optic (no aberrations), at
    the setup's defocus, or a Gaussian blob of the probe's size."""
    instrument = data.scene.instrument
    if setup.start_gaussian:
        y, x = np.mgrid[0:PROBE_SIZE, 0:PROBE_SIZE] - PROBE_SIZE / 2
        power = np.abs(data.probe) ** 2
        width = float(np.sqrt((power * (x**2 + y**2)).sum() / power.sum() / 2)) + 1.0
        blob = np.exp(-(x**2 + y**2) / (4 * width**2)).astype(np.complex64)
        normalised: ComplexArray = (blob / np.sqrt(np.sum(np.abs(blob) ** 2))).astype(np.complex64)
        return normalised
    defocus = instrument.defocus_um * setup.start_defocus
    return make_probe(instrument, PROBE_SIZE, np.random.default_rng(0), defocus, aberration_rad=0.0)


def measure(data: SceneData, setup: Setup) -> DiffractionData:
    """Diffraction data of the scene under the setup's measurement faults."""
    instrument = data.scene.instrument
    modes = make_probe_modes(
        data.probe,
        setup.true_modes or instrument.coherent_modes,
        setup.true_coherence or instrument.coherence,
    )
    positions = positions_for(data, setup)
    kwargs: dict[str, Any] = {k: v for k, v in setup.sim.items()}
    lag = kwargs.pop("line_lag", None)
    if lag is not None:
        kwargs["position_errors"] = _line_lag_errors(positions, lag[0], lag[1], data.seed)
    drift = kwargs.pop("drift", None)
    if drift is not None:
        kwargs["probe_curvature"] = _slow_walk(len(positions), drift, seed=data.seed)
    fraction = kwargs.pop("saturation_fraction", None)
    if fraction is not None:
        probe_run = simulate(
            data.object,
            modes,
            positions[:1],
            instrument.photons_per_pattern,
            np.random.default_rng(0),
            poisson=False,
        )
        kwargs["saturation"] = float(fraction * probe_run.patterns.max())
    rng = np.random.default_rng([data.seed, 2])
    return simulate(data.object, modes, positions, instrument.photons_per_pattern, rng, **kwargs)


def _slow_walk(n: int, amplitude: float, seed: int) -> FloatArray:
    """A slow random drift over ``n`` scan points, scaled to ±``amplitude``."""
    rng = np.random.default_rng([seed, 5])
    walk = np.cumsum(rng.normal(0, 1, n))
    walk = np.convolve(walk, np.ones(7) / 7, mode="same")
    walk -= walk.mean()
    scaled: FloatArray = amplitude * walk / (np.abs(walk).max() + 1e-12)
    return scaled


def _line_lag_errors(positions: FloatArray, amplitude: float, rms: float, seed: int) -> FloatArray:
    """Per-row x offsets of a snake raster: ±amplitude alternating with the direction of
    travel, plus ``rms`` jitter per row (a fly scan's encoder lag)."""
    rng = np.random.default_rng([seed, 3])
    rows = np.unique(np.round(positions[:, 0], 3))
    errors = np.zeros_like(positions)
    for i, row in enumerate(rows):
        on_row = np.isclose(positions[:, 0], row, atol=1e-3)
        errors[on_row, 1] = (amplitude if i % 2 == 0 else -amplitude) + rng.normal(0, rms)
    return errors


def preprocess(
    patterns: npt.NDArray[np.float32], steps: tuple[str, ...]
) -> npt.NDArray[np.float32]:
    """Apply the pattern fixes: ``recenter`` (centre of mass of the mean pattern to the
    centre, whole pixels) and ``transpose``."""
    out = patterns
    for step in steps:
        if step == "transpose":
            out = np.ascontiguousarray(np.swapaxes(out, -1, -2))
        elif step == "recenter":
            mean = out.mean(axis=0).astype(np.float64)
            y, x = np.mgrid[0 : mean.shape[0], 0 : mean.shape[1]]
            total = mean.sum()
            cy, cx = (mean * y).sum() / total, (mean * x).sum() / total
            dy, dx = round(mean.shape[0] // 2 - cy), round(mean.shape[1] // 2 - cx)
            out = np.roll(out, (dy, dx), axis=(-2, -1))
        else:
            raise ValueError(f"unknown preprocessing step {step!r}")
    return out


@dataclass(frozen=True)
class Outcome:
    """A reconstruction of a scene under a setup, and its metrics against the truth."""

    result: ReconResult
    metrics: dict[str, float]


def run_setup(
    data: SceneData, setup: Setup, measured: DiffractionData | None = None
) -> tuple[Outcome, DiffractionData]:
    """Measure (unless ``measured`` is given) and reconstruct; metrics in the scan area."""
    measured = measured if measured is not None else measure(data, setup)
    patterns = preprocess(measured.patterns, setup.preprocess)
    positions = positions_for(data, setup)
    result = reconstruct(
        patterns,
        start_probe(data, setup),
        positions,
        config=setup.config,
        object_size=OBJECT_SIZE,
    )
    step = scene_for(data, setup).instrument.step_px
    mask = scan_mask(data.object.shape, positions, PROBE_SIZE)
    metrics = image_metrics(result.object, data.object, mask, step)
    return Outcome(result, metrics), measured
