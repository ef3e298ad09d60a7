"""What varies between beamlines, drawn per sample for the training corpus and the
shifted test set.

The benchmark set (``variation="none"``) uses each named instrument exactly as
:mod:`ptychobench.sim.instruments` defines it. A corpus has to teach what artifacts look
like on beamlines it has never seen, so ``"corpus"`` draws, for every sample, the
numbers that differ between facilities and between days at one facility around the
named instrument: photon energy, step, dose, defocus, coherence, the scan pattern
(Fermat, snake raster, raster with jitter, one-way line raster), how thick the specimen
is (its phase and absorption) and the reconstruction's iteration budget.
``"shifted"`` is the project's out-of-domain yardstick: it uses other instruments and
sample types (:data:`SHIFTED_INSTRUMENTS`, :data:`SHIFTED_SAMPLE_TYPES`) and draws the
same numbers from wider ranges.

A variant is drawn from the sample's attempt seed alone, so the verification of a fix
rebuilds exactly the experiment that was diagnosed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Literal, get_args

import numpy as np

from ptychobench.sim.instruments import (
    INSTRUMENTS,
    SHIFTED_INSTRUMENTS,
    Instrument,
    ScanKind,
    instrument_named,
)
from ptychobench.sim.objects import SAMPLE_TYPES, SHIFTED_SAMPLE_TYPES

Variation = Literal["none", "corpus", "shifted"]
VARIATIONS: Final[tuple[str, ...]] = get_args(Variation)


@dataclass(frozen=True)
class Variant:
    """How one sample's experiment departs from its named instrument and sample type."""

    energy_scale: float = 1.0
    step_scale: float = 1.0
    dose_scale: float = 1.0
    defocus_scale: float = 1.0
    coherence: float | None = None  # None: the instrument's
    scan_kind: ScanKind | None = None  # None: the instrument's
    phase_scale: float = 1.0
    absorption_scale: float = 1.0
    epochs_scale: float = 1.0

    def instrument(self, name: str) -> Instrument:
        """The named instrument as this sample's experiment ran it."""
        base = instrument_named(name)
        if self == Variant():
            return base
        return replace(
            base,
            energy_kev=round(base.energy_kev * self.energy_scale, 3),
            step_px=round(base.step_px * self.step_scale, 2),
            photons_per_pattern=float(f"{base.photons_per_pattern * self.dose_scale:.3g}"),
            defocus_um=round(base.defocus_um * self.defocus_scale, 2),
            coherence=base.coherence if self.coherence is None else self.coherence,
            scan_kind=base.scan_kind if self.scan_kind is None else self.scan_kind,
        )

    def epochs(self, planned: int) -> int:
        return max(1, round(planned * self.epochs_scale))

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Ranges:
    energy: tuple[float, float]
    step: tuple[float, float]
    log10_dose: tuple[float, float]
    defocus: tuple[float, float]
    coherence: tuple[float, float]
    scans: tuple[tuple[ScanKind | None, float], ...]  # (kind, weight); None keeps it
    phase: tuple[float, float]
    absorption: tuple[float, float]
    epochs: tuple[float, ...]


_RANGES: Final[dict[str, _Ranges]] = {
    "corpus": _Ranges(
        energy=(0.85, 1.2),
        step=(0.8, 1.2),
        log10_dose=(-0.5, 0.4),
        defocus=(0.8, 1.25),
        coherence=(0.75, 1.0),
        scans=((None, 0.4), ("fermat", 0.2), ("raster", 0.15), ("raster_jitter", 0.25)),
        phase=(0.75, 1.3),
        absorption=(0.6, 1.5),
        epochs=(1.0, 1.0, 1.25, 1.5),
    ),
    "shifted": _Ranges(
        energy=(0.8, 1.3),
        step=(0.75, 1.3),
        log10_dose=(-0.8, 0.5),
        defocus=(0.7, 1.35),
        coherence=(0.7, 1.0),
        scans=((None, 0.5), ("line", 0.3), ("raster_jitter", 0.2)),
        phase=(0.7, 1.4),
        absorption=(0.5, 1.8),
        epochs=(0.8, 1.0, 1.5, 2.0),
    ),
}


def draw_variant(variation: str, seed: int, coherent_modes: int) -> Variant:
    """The variant of the sample whose attempt seed is ``seed`` (deterministic)."""
    if variation == "none":
        return Variant()
    ranges = _RANGES.get(variation)
    if ranges is None:
        raise ValueError(f"unknown variation {variation!r}; expected one of {VARIATIONS}")
    rng = np.random.default_rng([seed, 11])
    kinds = [kind for kind, _ in ranges.scans]
    weights = np.array([weight for _, weight in ranges.scans])
    scan = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    coherence = round(float(rng.uniform(*ranges.coherence)), 3)
    return Variant(
        energy_scale=round(float(rng.uniform(*ranges.energy)), 3),
        step_scale=round(float(rng.uniform(*ranges.step)), 3),
        dose_scale=round(float(10 ** rng.uniform(*ranges.log10_dose)), 3),
        defocus_scale=round(float(rng.uniform(*ranges.defocus)), 3),
        coherence=coherence if coherent_modes > 1 else None,
        scan_kind=scan,
        phase_scale=round(float(rng.uniform(*ranges.phase)), 3),
        absorption_scale=round(float(rng.uniform(*ranges.absorption)), 3),
        epochs_scale=float(ranges.epochs[int(rng.integers(len(ranges.epochs)))]),
    )


def instruments_for(variation: str) -> dict[str, Instrument]:
    """The named instruments a dataset of this variation draws from."""
    return dict(SHIFTED_INSTRUMENTS) if variation == "shifted" else dict(INSTRUMENTS)


def sample_types_for(variation: str) -> tuple[str, ...]:
    """The sample types a dataset of this variation draws from."""
    return SHIFTED_SAMPLE_TYPES if variation == "shifted" else SAMPLE_TYPES


__all__ = [
    "VARIATIONS",
    "Variant",
    "Variation",
    "draw_variant",
    "instruments_for",
    "sample_types_for",
]
