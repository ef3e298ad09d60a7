"""The plan of a PtychoBench-Sim run: its settings (:class:`SimSettings`, everything a
dataset depends on) and what each sample will be (:func:`make_plan`: type, instrument,
fault(s); :func:`replacement` for a sample that could not be made).

Moved out of :mod:`ptychobench.sim.generate` as it was: the same draws from the same
seeds, in the same order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ptychobench.sim.faults import FAULTS
from ptychobench.sim.variation import Variation, instruments_for, sample_types_for

PAPER_SIZES: Final = {"detection": (312, 79), "recommendation": (91, 44)}

# Two faults only where both stay readable in one image and do not touch the same knob.
PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("position_errors", "probe_drift"),
    ("position_errors", "over_regularised"),
    ("position_errors", "too_few_iterations"),
    ("line_lag", "probe_drift"),
    ("off_centre_patterns", "probe_drift"),
    ("single_probe_mode", "probe_drift"),
    ("single_probe_mode", "position_errors"),
    ("over_regularised", "probe_drift"),
)


class SimSettings(BaseModel):
    """Everything a generated dataset depends on (recorded in ``metadata.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(default=391, ge=12, le=100_000)
    seed: int = 0
    test_fraction: float = Field(default=79 / 391, gt=0, lt=1)
    recommendation_train_share: float = Field(default=91 / 312, gt=0, le=1)
    recommendation_test_share: float = Field(default=44 / 79, gt=0, le=1)
    clean_share: float = Field(default=0.1, ge=0, le=1)
    two_fault_share: float = Field(default=0.15, ge=0, le=1)
    verify_fraction: float = Field(default=1.0, ge=0, le=1)
    min_fix_gain: float = Field(default=0.3, gt=0, le=1)
    max_attempts: int = Field(default=2, ge=1)
    faults: tuple[str, ...] = tuple(FAULTS)
    variation: Variation = "none"
    """What varies per sample (:mod:`ptychobench.sim.variation`): "none" for the
    benchmark set, "corpus" for training data, "shifted" for the out-of-domain set."""
    standing_share: float = Field(default=0.0, ge=0, le=1)
    """Share of sample types measured as one session with a standing fault. At 0 (the
    default) every sample draws its instrument and faults on its own, so a sample type
    says nothing about its faults. Above 0 each sample type is one experiment at one
    instrument, and that share of them has a fault that stays for the session (a
    miscalibrated stage, a drifting probe, a badly chosen setting that is reused);
    ``standing_rate`` of its samples show it. This is what the paper's sample-specific
    few-shot examples rely on."""
    standing_rate: float = Field(default=0.75, ge=0, le=1)
    """Share of a standing-fault session's samples that show its fault (the others
    draw theirs on their own)."""

    def check(self) -> None:
        """Raise ``ValueError`` for settings no dataset can satisfy."""
        unknown = [name for name in self.faults if name not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {list(FAULTS)}")
        if not self.faults and self.clean_share < 1:
            raise ValueError("no faults chosen: set clean_share to 1 or choose faults")
        n_test = int(np.ceil(self.n * self.test_fraction))
        if n_test < 1 or n_test >= self.n:
            raise ValueError(
                f"n={self.n} with test_fraction={self.test_fraction} leaves a split empty"
            )


@dataclass(frozen=True)
class PlanItem:
    index: int
    id: str
    sample_type: str
    instrument: str
    faults: tuple[str, ...]


def sample_id(seed: int, index: int) -> str:
    return hashlib.sha256(f"ptychobench-sim\x1f{seed}\x1f{index}".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Session:
    """One sample type's experiment: its instrument and its standing fault (or none)."""

    instrument: str
    fault: str | None


def _usable(settings: SimSettings, sample_type: str, instrument: str) -> list[str]:
    from ptychobench.sim.faults import Scene

    scene = Scene(sample_type, instruments_for(settings.variation)[instrument], 0, False)
    return [n for n in settings.faults if FAULTS[n].applies_to(scene)]


def sessions(settings: SimSettings) -> dict[str, Session]:
    """Each sample type's session (empty when ``standing_share`` is 0). Drawn from a
    stream of their own, so the samples' draws are those of the same seed without."""
    if settings.standing_share == 0:
        return {}
    rng = np.random.default_rng([settings.seed, 7])
    names = list(instruments_for(settings.variation))
    out: dict[str, Session] = {}
    for sample_type in sample_types_for(settings.variation):
        instrument = names[int(rng.integers(len(names)))]
        usable = _usable(settings, sample_type, instrument)
        standing = rng.random() < settings.standing_share and bool(usable)
        fault = usable[int(rng.integers(len(usable)))] if standing else None
        out[sample_type] = Session(instrument, fault)
    return out


def _draw_item(
    settings: SimSettings,
    index: int,
    sample_type: str,
    rng: np.random.Generator,
    session: Session | None = None,
) -> PlanItem:
    """Instrument and fault(s) of one sample of ``sample_type`` (in ``session``: its
    instrument, and its standing fault for ``standing_rate`` of the samples)."""
    from ptychobench.sim.faults import Scene

    instruments = instruments_for(settings.variation)
    names = list(instruments)
    instrument = names[int(rng.integers(len(names)))]
    if session is not None:
        instrument = session.instrument
        if session.fault is not None and rng.random() < settings.standing_rate:
            standing = (session.fault,)
            return PlanItem(
                index, sample_id(settings.seed, index), sample_type, instrument, standing
            )
    usable = [FAULTS[n] for n in _usable(settings, sample_type, instrument)]
    scene = Scene(sample_type, instruments[instrument], 0, False)
    faults: tuple[str, ...] = ()
    if usable and rng.random() >= settings.clean_share:
        pairs = [
            pair
            for pair in PAIRS
            if all(name in settings.faults and FAULTS[name].applies_to(scene) for name in pair)
        ]
        if pairs and rng.random() < settings.two_fault_share:
            faults = pairs[int(rng.integers(len(pairs)))]
        else:
            weights = np.array([f.weight for f in usable])
            faults = (usable[int(rng.choice(len(usable), p=weights / weights.sum()))].name,)
    return PlanItem(index, sample_id(settings.seed, index), sample_type, instrument, faults)


def make_plan(settings: SimSettings) -> list[PlanItem]:
    """What each sample will be: type (balanced), instrument, fault(s). Deterministic."""
    settings.check()
    rng = np.random.default_rng([settings.seed, 0])
    kinds = sample_types_for(settings.variation)
    types = [kinds[i % len(kinds)] for i in range(settings.n)]
    rng.shuffle(types)
    session = sessions(settings)
    return [
        _draw_item(settings, index, sample_type, rng, session.get(sample_type))
        for index, sample_type in enumerate(types)
    ]


def replacement(settings: SimSettings, failed: PlanItem, number: int) -> PlanItem:
    """The ``number``-th replacement (0, 1, …) for samples that could not be made: the
    same sample type, a fresh draw of instrument and faults, index ``n + number``."""
    rng = np.random.default_rng([settings.seed, 9, number])
    session = sessions(settings).get(failed.sample_type)
    return _draw_item(settings, settings.n + number, failed.sample_type, rng, session)


__all__ = [
    "PAIRS",
    "PAPER_SIZES",
    "PlanItem",
    "Session",
    "SimSettings",
    "make_plan",
    "replacement",
    "sample_id",
    "sessions",
]
