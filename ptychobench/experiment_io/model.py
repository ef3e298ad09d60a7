"""What an experiment or reconstruction file holds, as dataclasses, and the limits a
file read from outside must respect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from ptychobench.sim.reconstruct import ReconConfig

LAYOUT: Final = "ptychoagent-experiment/1"
"""The ``layout`` attribute of every file written here."""
PREPROCESS_STEPS: Final = ("recenter", "transpose")
HC_EV_M: Final = 1.2398419843320026e-6
"""h·c in eV·m: wavelength = HC_EV_M / energy."""

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex64]
Source = str | Path | IO[bytes]


class ExperimentError(ValueError):
    """An experiment file that cannot be reconstructed; ``field`` names the dataset or
    attribute at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Limits:
    """Sizes beyond which an experiment is refused before its arrays are read."""

    max_positions: int = 200_000
    max_pattern_px: int = 4096
    max_object_px: int = 32_768
    max_modes: int = 64
    max_pattern_bytes: int = 16 * 2**30
    """Of the patterns as float32 in memory."""


@dataclass(frozen=True)
class Geometry:
    """Far-field geometry: photon energy, detector distance and pixel, object pixel.

    The object pixel of a far-field experiment is λ·z / (n·p) for n detector pixels of
    size p at distance z; :func:`read_experiment` checks that the three agree.
    """

    energy_ev: float
    detector_distance_m: float
    detector_pixel_size_m: float
    object_pixel_size_m: float

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_ev

    def far_field_pixel_m(self, pattern_px: int) -> float:
        return (
            self.wavelength_m * self.detector_distance_m / (pattern_px * self.detector_pixel_size_m)
        )

    @classmethod
    def for_object_pixel(
        cls,
        energy_ev: float,
        object_pixel_size_m: float,
        pattern_px: int,
        detector_pixel_size_m: float = 75e-6,
    ) -> Geometry:
        """The geometry whose far field gives ``object_pixel_size_m`` (detector distance
        derived; 75 µm pixels are an Eiger's)."""
        wavelength = HC_EV_M / energy_ev
        distance = object_pixel_size_m * pattern_px * detector_pixel_size_m / wavelength
        return cls(energy_ev, distance, detector_pixel_size_m, object_pixel_size_m)


@dataclass(frozen=True)
class Truth:
    """What a simulation knows and a beamline does not (for scoring only)."""

    object: ComplexArray
    """(H, W) the true transmission."""
    probe: ComplexArray
    """(n_modes, h, w) the true probe modes, scaled to the dose."""
    positions_px: FloatArray
    """(N, 2) (y, x) the positions that made the data."""
    labels: Mapping[str, Any] = field(default_factory=dict)
    """Faults, artifact labels and fix letters of the sample."""
    clean_config: ReconConfig | None = None
    """The options a careful user would have chosen (the clean reconstruction's)."""
    clean_preprocess: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """A ptychography experiment, ready to reconstruct.

    Positions are (y, x) in object pixels relative to the object's centre (Pty-chi's
    convention); patterns are intensities with the zero frequency in the centre.
    """

    patterns: npt.NDArray[np.float32]
    """(N, h, w) counts."""
    positions_px: FloatArray
    """(N, 2) nominal (y, x) positions."""
    probe: ComplexArray
    """(n_opr, n_modes, h, w) the starting probe."""
    object: ComplexArray
    """(n_slices, H, W) the starting object (its shape is the object's size)."""
    geometry: Geometry
    config: ReconConfig = field(default_factory=ReconConfig)
    """The current reconstruction options."""
    preprocess: tuple[str, ...] = ()
    """Steps applied to the patterns before reconstruction (``recenter``, ``transpose``)."""
    valid_pixel_mask: npt.NDArray[np.bool_] | None = None
    name: str = ""
    comments: str = ""
    sample_type: str = ""
    instrument: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    """The "Current Reconstruction Parameters" as a user would list them."""
    source: str = ""
    """Where the experiment came from (``ptychobench-sim:DIR#ID`` for simulated ones)."""
    photon_count: float = 0.0
    exposure_time_s: float = 0.0
    truth: Truth | None = None

    @property
    def n_positions(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def object_shape(self) -> tuple[int, int]:
        return int(self.object.shape[-2]), int(self.object.shape[-1])

    @property
    def probe_size(self) -> int:
        return int(self.patterns.shape[-1])


@dataclass(frozen=True)
class Reconstruction:
    """A reconstruction as written by :func:`write_reconstruction`."""

    object: ComplexArray
    """(n_slices, H, W)."""
    probe: ComplexArray
    """(n_opr, n_modes, h, w)."""
    positions_px: FloatArray
    losses: tuple[float, ...]
    config: ReconConfig
    metrics: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    """Device, seconds, source experiment."""


__all__ = [
    "HC_EV_M",
    "LAYOUT",
    "PREPROCESS_STEPS",
    "ComplexArray",
    "Experiment",
    "ExperimentError",
    "FloatArray",
    "Geometry",
    "Limits",
    "Reconstruction",
    "Source",
    "Truth",
]
