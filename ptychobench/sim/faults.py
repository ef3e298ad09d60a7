"""Fault recipes: what goes wrong in an experiment, what it looks like, what fixes it.

A :class:`Scene` is an experiment before anything goes wrong (object, instrument, probe,
scan); a :class:`Setup` is how that experiment is measured and reconstructed. A
:class:`Fault` changes the setup (the measurement, the reconstruction parameters or
both), names the artifact labels it can cause with the image-metric :class:`Check` that
confirms each one against a clean reconstruction, and names the option letters whose
changes (:func:`apply_fix`) undo it. Nothing here runs a reconstruction: see
``ptychobench.sim.generate``.

The recipes follow what was measured on simulated data with Pty-chi (see the project's
ENVIRONMENT notes); the labels a sample gets are the checks that passed, never the
recipe's intent alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ptychobench.labels import OPTIONS
from ptychobench.sim.instruments import Instrument, scan_family
from ptychobench.sim.reconstruct import ReconConfig

FloatArray = npt.NDArray[np.float64]
Preprocess = Literal["recenter", "transpose"]

OBJECT_SIZE: Final = 128
PROBE_SIZE: Final = 64
SCAN_MARGIN: Final = 6.0


@dataclass(frozen=True)
class Setup:
    """How a scene is measured and reconstructed.

    ``sim`` holds keyword arguments for :func:`ptychobench.sim.forward.simulate` (the
    fault hooks); ``true_modes`` overrides the instrument's number of coherent modes;
    ``start_defocus`` scales the defocus of the starting probe the reconstruction gets
    (1 = the nominal optic); ``preprocess`` is what is done to the patterns before
    reconstruction (the M and Q fixes); ``config`` are the reconstruction parameters.
    """

    config: ReconConfig
    sim: Mapping[str, Any] = field(default_factory=dict)
    true_modes: int | None = None
    true_coherence: float | None = None
    start_defocus: float = 1.0
    start_gaussian: bool = False
    preprocess: tuple[Preprocess, ...] = ()
    scan_override: Literal["raster"] | None = None


def clean_config(
    instrument: Instrument, n_positions: int, strong_phase: bool = False, device: str = "cpu"
) -> ReconConfig:
    """The parameters a careful user starts from on this instrument (strong phase
    objects, far above 2π, converge more slowly and get more iterations)."""
    return ReconConfig(
        engine="lsqml",
        num_epochs=100 if strong_phase else 40,
        batch_size=max(8, n_positions // 4),
        n_probe_modes=instrument.coherent_modes,
        n_opr_modes=1,
        noise_model="gaussian",
        device=device,  # type: ignore[arg-type]  # checked by the model
    )


@dataclass(frozen=True)
class Check:
    """A metric of the faulted reconstruction compared with the clean one.

    ``above``: the faulted value must exceed ``factor × clean + offset`` and ``floor``;
    ``below``: it must stay under ``factor × clean − offset`` and ``floor``.
    """

    metric: str
    direction: Literal["above", "below"]
    factor: float = 1.0
    offset: float = 0.0
    floor: float | None = None

    def passes(self, fault: Mapping[str, float], clean: Mapping[str, float]) -> bool:
        value, reference = fault[self.metric], clean[self.metric]
        if self.direction == "above":
            bound = self.factor * reference + self.offset
            return value > bound and (self.floor is None or value > self.floor)
        bound = self.factor * reference - self.offset
        return value < bound and (self.floor is None or value < self.floor)

    def describe(self) -> str:
        sign = ">" if self.direction == "above" else "<"
        parts = [f"{self.metric} {sign} {self.factor:g}×clean"]
        if self.offset:
            parts[0] += f" {'+' if self.direction == 'above' else '-'} {self.offset:g}"
        if self.floor is not None:
            parts.append(f"{self.metric} {sign} {self.floor:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Scene:
    """What the fault recipes need to know about an experiment."""

    sample_type: str
    instrument: Instrument
    n_positions: int
    strong_phase: bool


Apply = Callable[[Setup, Scene, np.random.Generator], Setup]


@dataclass(frozen=True)
class Fault:
    """One recipe. ``artifacts`` maps each label it can cause to the checks that confirm
    it (all must pass); ``fixes`` are the option letters that undo it (empty when none
    of the 24 options can)."""

    name: str
    summary: str
    apply: Apply
    artifacts: Mapping[str, tuple[Check, ...]]
    fixes: tuple[str, ...]
    sample_types: tuple[str, ...] | None = None  # None: any
    scans: tuple[str, ...] | None = None  # scan kinds it needs: None: any
    weight: float = 1.0

    def applies_to(self, scene: Scene) -> bool:
        if self.sample_types is not None and scene.sample_type not in self.sample_types:
            return False
        return self.scans is None or scan_family(scene.instrument.scan_kind) in self.scans


def _config(setup: Setup, **changes: Any) -> Setup:
    return replace(setup, config=setup.config.model_copy(update=changes))


def _sim(setup: Setup, **changes: Any) -> Setup:
    return replace(setup, sim={**setup.sim, **changes})


# ------------------------------------------------------------------------- the recipes

_SHARP_STRUCTURE: Final = (
    "Siemens star",
    "XRnanotech 3D test pattern",
    "Integrated circuit",
    "Diatom frustule",
)
_PARTICLES: Final = (
    "Integrated circuit",
    "TiO2 in capillary",
    "Liquid-metal particles",
    "NCM battery particles",
    "LNO/CuS battery material",
    "Supercrystal",
    "Gold nanoparticles on membrane",
)


def _few_iterations(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _config(setup, num_epochs=int(rng.integers(2, 5)))


def _halo_iterations(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _config(setup, num_epochs=int(rng.integers(6, 11)))


def _position_errors(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    rms = rng.uniform(0.8, 1.5)
    errors = np.clip(rng.normal(0, rms, (scene.n_positions, 2)), -SCAN_MARGIN + 1, SCAN_MARGIN - 1)
    return _sim(setup, position_errors=errors)


def _line_lag(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _sim(setup, line_lag=(rng.uniform(1.5, 2.5), 0.7))


def _off_centre(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    shift = rng.integers(0, 3, 2) * rng.choice([-1, 1], 2)
    if not shift.any():
        shift[rng.integers(0, 2)] = rng.choice([-1, 1])
    setup = _sim(setup, pattern_shift=(int(shift[0]), int(shift[1])))
    return _config(setup, probe_update_start=10)


def _transposed(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _sim(setup, transpose=True)


def _probe_drift(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    # the focus drifts during the scan: each position sees a slightly different probe
    return _sim(setup, drift=float(rng.uniform(1.5, 3.0)))


def _one_mode(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return replace(_config(setup, n_probe_modes=1), true_modes=3, true_coherence=0.55)


def _over_regularised(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _config(setup, tv_weight=float(rng.uniform(0.05, 0.2)))


def _raster_poor_probe(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    setup = replace(setup, start_gaussian=True, scan_override="raster")
    return _config(setup, probe_update_start=int(rng.integers(5, 15)))


def _poisson_model(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    if rng.random() < 0.5:  # with a hot detector pixel, as at a real beamline
        row, col = (int(v) for v in rng.integers(8, 24, 2) + 32 * rng.integers(0, 2, 2))
        setup = _sim(setup, hot_pixels=((row, col, float(rng.uniform(100, 1000))),))
    return _config(setup, noise_model="poisson")


def _beamstop(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    instrument = scene.instrument
    shadow = 0.0
    if instrument.probe_kind != "gaussian":  # the zone plate's central stop, on the detector
        shadow = instrument.central_stop * instrument.pupil_radius * PROBE_SIZE
    return _sim(setup, beamstop_radius=shadow + float(rng.uniform(2.0, 4.0)))


def _singularity(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    setup = replace(setup, start_defocus=2.0)
    return _config(setup, num_epochs=int(rng.integers(6, 11)))


def _one_batch(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _config(setup, batch_size=None, num_epochs=int(rng.integers(10, 16)))


def _tiny_batches(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _config(setup, batch_size=int(rng.integers(2, 5)))


def _saturation(setup: Setup, scene: Scene, rng: np.random.Generator) -> Setup:
    return _sim(setup, saturation_fraction=float(rng.uniform(0.1, 0.25)))


_BLUR: Final = (Check("sharpness", "below", 0.6),)
_NO_STRUCTURE: Final = (Check("correlation", "below", 0.5, floor=0.35),)
_LOW_CONTRAST: Final = (Check("contrast", "below", 0.75),)
_HALO: Final = (
    Check("low_freq_transfer", "below", 0.85),
    Check("halo_slope", "below", 1.0, 0.15, floor=-0.25),
)

FAULTS: Final[dict[str, Fault]] = {
    f.name: f
    for f in (
        Fault(
            "too_few_iterations",
            "stopped after 2-4 epochs",
            _few_iterations,
            {"Blurring": _BLUR, "Low contrast": _LOW_CONTRAST, "Halo artifacts": _HALO},
            ("K",),
        ),
        Fault(
            "early_stop_halo",
            "stopped after 6-10 epochs: the low spatial frequencies have not converged",
            _halo_iterations,
            {"Halo artifacts": _HALO, "Low contrast": _LOW_CONTRAST, "Blurring": _BLUR},
            ("K",),
            sample_types=_PARTICLES,
        ),
        Fault(
            "position_errors",
            "0.8-1.5 px rms position errors, position correction off",
            _position_errors,
            {"Local distortion": (Check("nrmse", "above", 1.3, 0.05),)},
            ("G",),
        ),
        Fault(
            "line_lag",
            "fly-scan line lag: each scan row shifted along the fast axis",
            _line_lag,
            {"Line artifacts": (Check("line_shift", "above", 5.0, floor=0.5),)},
            ("G",),
            sample_types=_SHARP_STRUCTURE,
            scans=("raster",),
        ),
        Fault(
            "off_centre_patterns",
            "beam centre 1-2 px off the detector centre, probe update delayed",
            _off_centre,
            {"Phase ramp": (Check("ramp_slope", "above", 5.0, floor=0.015),)},
            ("M",),
        ),
        Fault(
            "transposed_patterns",
            "patterns stored transposed",
            _transposed,
            {"No clear structure": _NO_STRUCTURE},
            ("Q",),
        ),
        Fault(
            "probe_drift",
            "focus drifting during the scan (1.5-3 rad), variable-probe correction off",
            _probe_drift,
            {"Non-uniform background": (Check("background", "above", 1.8, 0.02),)},
            ("T",),
        ),
        Fault(
            "single_probe_mode",
            "partially coherent beam (55 % in the first of 3 modes), 1 probe mode",
            _one_mode,
            {"Noisy artifacts": (Check("noise_power", "above", 1.5),)},
            ("J",),
        ),
        Fault(
            "over_regularised",
            "strong total-variation regularisation",
            _over_regularised,
            {"Blurring": _BLUR, "Low contrast": _LOW_CONTRAST},
            ("P",),
        ),
        Fault(
            "raster_poor_probe",
            "raster scan started from a Gaussian blob, probe update from epoch 5-14",
            _raster_poor_probe,
            {
                "Grid artifacts": (Check("grid_power", "above", 10.0, floor=0.1),),
                "No clear structure": _NO_STRUCTURE,
            },
            (),
            weight=0.4,
        ),
        Fault(
            "poisson_noise_model",
            "LSQML with the Poisson noise model (half of them with a hot pixel)",
            _poisson_model,
            {
                "Noisy artifacts": (Check("noise_power", "above", 3.0, floor=0.05),),
                "No clear structure": _NO_STRUCTURE,
                "Singularity artifacts": (
                    Check("residues", "above", 3.0, 0.5),
                    Check("correlation", "above", 0.0, floor=0.5),
                ),
            },
            ("U",),
            weight=0.8,
        ),
        Fault(
            "beamstop",
            "unmasked beamstop larger than the probe's central-stop shadow",
            _beamstop,
            {"Halo artifacts": _HALO},
            (),
            sample_types=_PARTICLES,
            weight=0.5,
        ),
        Fault(
            "singularity",
            "strong phase object, starting probe at twice the defocus, 6-10 epochs",
            _singularity,
            {"Singularity artifacts": (Check("residues", "above", 3.0, 0.5),)},
            ("K",),
            sample_types=("Liquid-metal particles", "TiO2 in capillary", "Integrated circuit"),
            weight=0.3,
        ),
        Fault(
            "one_batch",
            "all positions in one LSQML batch, 10-15 epochs",
            _one_batch,
            {"Blurring": _BLUR, "Low contrast": _LOW_CONTRAST},
            ("N",),
        ),
        Fault(
            "tiny_batches",
            "batches of 2-4 positions",
            _tiny_batches,
            {"Noisy artifacts": (Check("noise_power", "above", 2.0),)},
            ("H",),
            weight=0.15,
        ),
        Fault(
            "saturation",
            "detector saturated at 10-25 % of the frame maximum, unmasked",
            _saturation,
            {"Halo artifacts": _HALO, "Low contrast": _LOW_CONTRAST},
            (),
            sample_types=_PARTICLES,
            weight=0.3,
        ),
    )
}
"""The fault recipes by name."""


def confirmed_labels(
    fault: Fault, metrics: Mapping[str, float], clean: Mapping[str, float]
) -> list[str]:
    """The labels of ``fault`` whose every check passes for these metrics."""
    return [
        label
        for label, checks in fault.artifacts.items()
        if all(check.passes(metrics, clean) for check in checks)
    ]


def apply_fix(setup: Setup, letter: str, scene: Scene) -> Setup:
    """The setup with option ``letter``'s change made (the measurement is unchanged)."""
    config = setup.config
    if letter == "K":
        return _config(
            setup, num_epochs=max(100 if scene.strong_phase else 60, 5 * config.num_epochs)
        )
    if letter == "G":
        return _config(
            setup,
            position_correction=True,
            position_step_size=3.0,
            position_update_limit=0.5,
            position_correction_start=2,
        )
    if letter == "M":
        return replace(setup, preprocess=(*setup.preprocess, "recenter"))
    if letter == "Q":
        return replace(setup, preprocess=(*setup.preprocess, "transpose"))
    if letter == "T":
        return _config(setup, n_opr_modes=2)
    if letter == "J":
        return _config(setup, n_probe_modes=max(3, config.n_probe_modes + 1))
    if letter == "P":
        return _config(setup, tv_weight=0.0, smoothness=0.0)
    if letter == "U":
        return _config(setup, noise_model="gaussian")
    if letter == "N":
        return _config(setup, batch_size=max(8, scene.n_positions // 4))
    if letter == "H":
        return _config(setup, batch_size=max(8, scene.n_positions // 4))
    raise ValueError(f"no fix is implemented for option {letter} ({OPTIONS.get(letter, '?')})")


def config_parameters(c: ReconConfig) -> dict[str, str]:
    """The entries of the "Current Reconstruction Parameters" that the options decide
    (the closed loop rewrites these after applying a change)."""
    batch = "all positions (1 batch)" if c.batch_size is None else str(c.batch_size)
    regularization = "none"
    if c.tv_weight > 0:
        regularization = f"total variation, weight {c.tv_weight:.2f}"
    return {
        "engine": "LSQML" if c.engine == "lsqml" else "ePIE",
        "iterations": str(c.num_epochs),
        "batch size": batch,
        "batch selection": c.batching_mode,
        "momentum acceleration": "on" if c.momentum > 0 else "off",
        "multimodal update": "on" if c.multimodal_update else "off",
        "position correction": "on" if c.position_correction else "off",
        "affine constraint": "on" if c.affine_constraint else "off",
        "probe modes": str(c.n_probe_modes),
        "OPR modes": str(c.n_opr_modes - 1),
        "probe update starts at iteration": str(c.probe_update_start),
        "noise model": c.noise_model.capitalize(),
        "regularization": regularization,
    }


def parameters_block(setup: Setup, scene: Scene) -> dict[str, str]:
    """The "Current Reconstruction Parameters" of a setup, as a user would list them."""
    options = config_parameters(setup.config)
    probe = "from the optics model (nominal defocus)"
    if setup.start_gaussian:
        probe = "Gaussian blob"
    elif setup.start_defocus != 1.0:
        probe = f"from the optics model at {setup.start_defocus:g}x the nominal defocus"
    first = list(options)[: list(options).index("noise model")]
    return {
        **{key: options[key] for key in first},
        "initial probe": probe,
        "noise model": options["noise model"],
        "regularization": options["regularization"],
        "diffraction pattern size": f"{PROBE_SIZE} x {PROBE_SIZE}",
        "scan": (setup.scan_override or scene.instrument.scan_kind)
        + f", step {scene.instrument.step_px:g} px, {scene.n_positions} positions",
        "object": f"{OBJECT_SIZE} x {OBJECT_SIZE} pixels, 1 slice",
    }


__all__ = [
    "FAULTS",
    "Check",
    "Fault",
    "Scene",
    "Setup",
    "apply_fix",
    "clean_config",
    "config_parameters",
    "confirmed_labels",
    "parameters_block",
]
