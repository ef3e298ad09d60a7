"""The closed loop's two pure pieces: applying option letters to a reconstruction's
options, and the rule that accepts or rejects the change.

**Applying letters.** :func:`apply_letters` makes the letters' changes the way the
simulator verifies its own fixes (:func:`ptychobench.sim.faults.apply_fix`, whose
concrete values are those of :mod:`ptychobench.changes`); a letter it has no
implementation for (A, B, C, …, or L "no changes") is reported as skipped, never guessed.

**The acceptance rule** (:func:`judge`, documented in ``docs/refine.md``). A round is
*accepted* iff both hold:

1. **the data fit did not get worse**: Pty-chi's final data-fit loss rose by at most
   ``max_loss_rise`` (5 %) relative to the round's start — skipped (and said so) when
   the two losses are not comparable: the noise model changed (Poisson and Gaussian
   losses are different quantities) or a loss is missing;
2. **every targeted artifact is gone or measurably smaller**: the targeted artifacts are
   those diagnosed before the change that the chosen letters are meant to remove
   (:data:`LETTER_TARGETS`, from the simulator's fault recipes; all diagnosed artifacts
   when the letters target none of them). Each must either no longer be diagnosed after
   the change, or its no-reference metric (:data:`ARTIFACT_METRICS`) must have moved the
   right way by at least ``min_metric_gain`` (10 %) of its start value (of the headroom
   ``1 − start`` for a power share that should rise, :data:`SHARES`; of the metric's
   floor, :data:`METRIC_FLOORS`, when that is tiny). An artifact
   without a metric (halo, local distortion, no clear structure) must no longer be
   diagnosed.

No web framework, no service: numpy-free even; the gateway and the benchmark both call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from ptychobench.labels import NO_ARTIFACTS, NO_CHANGES, OPTIONS
from ptychobench.sim.reconstruct import ReconConfig

if TYPE_CHECKING:
    from ptychobench.sim.faults import Scene, Setup

Direction = Literal["up", "down"]

ARTIFACT_METRICS: Final[Mapping[str, tuple[str, Direction]]] = {
    "Blurring": ("sharpness", "up"),
    "Low contrast": ("phase_contrast", "up"),
    "Phase ramp": ("ramp_slope", "down"),
    "Grid artifacts": ("grid_power", "down"),
    "Line artifacts": ("line_shift", "down"),
    "Singularity artifacts": ("residues", "down"),
    "Non-uniform background": ("background", "down"),
    "Noisy artifacts": ("noise_power", "down"),
}
"""The no-reference metric (:mod:`ptychobench.quality`) that measures each artifact, and
the direction it moves when the artifact shrinks."""

METRIC_FLOORS: Final[Mapping[str, float]] = {
    "sharpness": 0.01,
    "phase_contrast": 0.01,
    "ramp_slope": 0.005,
    "grid_power": 0.005,
    "line_shift": 0.1,
    "residues": 0.1,
    "background": 0.005,
    "noise_power": 0.005,
}
"""The scale below which a metric's value is noise: the margin is taken of
``max(|start|, floor)``, so a metric near zero needs a change above the floor's margin."""

ENGINE_FIELDS: Final = frozenset({"device", "torch_threads"})
"""``ReconConfig`` fields that say where a reconstruction runs, not what it does."""


def _letter_targets() -> dict[str, tuple[str, ...]]:
    from ptychobench.sim.faults import FAULTS

    targets: dict[str, set[str]] = {}
    for fault in FAULTS.values():
        for letter in fault.fixes:
            targets.setdefault(letter, set()).update(fault.artifacts)
    return {letter: tuple(sorted(labels)) for letter, labels in sorted(targets.items())}


LETTER_TARGETS: Final[Mapping[str, tuple[str, ...]]] = _letter_targets()
"""Letter → the artifact labels it is meant to remove (the labels of every simulator
fault the letter fixes)."""


@dataclass(frozen=True)
class AcceptanceRule:
    max_loss_rise: float = 0.05
    """The final data-fit loss may rise by at most this fraction."""
    min_metric_gain: float = 0.10
    """A targeted artifact's metric must move the right way by this fraction."""


@dataclass(frozen=True)
class Evidence:
    """What one reconstruction showed: its final data-fit loss, no-reference metrics,
    diagnosed artifacts and the noise model its loss was computed with."""

    final_loss: float | None
    metrics: Mapping[str, float]
    artifacts: Sequence[str]
    noise_model: str | None = None


@dataclass(frozen=True)
class ArtifactCheck:
    label: str
    metric: str | None
    before: float | None
    after: float | None
    gain: float | None
    """Relative move in the good direction (positive: better)."""
    gone: bool
    ok: bool


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    targeted: tuple[str, ...]
    loss_change: float | None
    """(after − before) / before of the final loss; None when not comparable."""
    loss_ok: bool
    checks: tuple[ArtifactCheck, ...]
    reasons: tuple[str, ...]

    @property
    def metric_gain(self) -> float | None:
        """The mean relative metric gain over the targeted artifacts that have a metric."""
        gains = [c.gain for c in self.checks if c.gain is not None]
        return sum(gains) / len(gains) if gains else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "targeted": list(self.targeted),
            "loss_change": self.loss_change,
            "loss_ok": self.loss_ok,
            "metric_gain": self.metric_gain,
            "checks": [c.__dict__ for c in self.checks],
            "reasons": list(self.reasons),
        }


def targeted_artifacts(letters: Iterable[str], observed: Iterable[str]) -> tuple[str, ...]:
    """The observed artifacts the letters are meant to remove (all observed ones when
    the letters target none of them)."""
    seen = [a for a in observed if a != NO_ARTIFACTS]
    aimed = {label for letter in letters for label in LETTER_TARGETS.get(letter, ())}
    hit = [a for a in seen if a in aimed]
    return tuple(hit or seen)


SHARES: Final = frozenset({"sharpness", "noise_power", "grid_power"})
"""Metrics that are a share of the phase power (0–1): one that should rise is judged on
the headroom it had (1 − start), since it cannot rise 10 % from 0.9."""


def _gain(metric: str, direction: Direction, before: float, after: float) -> float:
    start = 1.0 - before if metric in SHARES and direction == "up" else before
    scale = max(abs(start), METRIC_FLOORS.get(metric, 1e-9))
    moved = (after - before) if direction == "up" else (before - after)
    return moved / scale


def judge(
    before: Evidence,
    after: Evidence,
    letters: Iterable[str],
    rule: AcceptanceRule | None = None,
) -> Verdict:
    """Accept or reject a change (the rule is in the module's docstring)."""
    rule = rule or AcceptanceRule()
    targeted = targeted_artifacts(letters, before.artifacts)
    reasons: list[str] = []
    loss_change: float | None = None
    old, new = before.final_loss, after.final_loss
    comparable = (
        old is not None
        and new is not None
        and old > 0
        and (
            None in (before.noise_model, after.noise_model)
            or before.noise_model == after.noise_model
        )
    )
    if comparable and old is not None and new is not None:
        loss_change = (new - old) / old
        loss_ok = loss_change <= rule.max_loss_rise
        if not loss_ok:
            reasons.append(
                f"the data-fit loss rose {loss_change:+.1%} (at most "
                f"{rule.max_loss_rise:+.0%} allowed)"
            )
    else:
        loss_ok = True
        reasons.append("losses not comparable (noise model changed or a loss is missing)")
    remaining = set(after.artifacts)
    checks = []
    for label in targeted:
        gone = label not in remaining
        found = ARTIFACT_METRICS.get(label)
        metric = found[0] if found else None
        direction: Direction = found[1] if found else "down"
        b = before.metrics.get(metric) if metric else None
        a = after.metrics.get(metric) if metric else None
        gain = None
        if metric and b is not None and a is not None:
            gain = _gain(metric, direction, b, a)
        ok = gone or (gain is not None and gain >= rule.min_metric_gain)
        if not ok:
            if gain is None:
                reasons.append(f"{label} is still diagnosed and has no metric to show it shrank")
            else:
                reasons.append(
                    f"{label} is still diagnosed and {metric} moved {gain:+.1%} "
                    f"(at least {rule.min_metric_gain:+.0%} the {direction} way needed)"
                )
        checks.append(ArtifactCheck(label, metric, b, a, gain, gone, ok))
    if not targeted:
        reasons.append("no artifact was targeted")
    accepted = loss_ok and bool(targeted) and all(c.ok for c in checks)
    return Verdict(accepted, targeted, loss_change, loss_ok, tuple(checks), tuple(reasons))


@dataclass(frozen=True)
class Applied:
    """Options after the letters' changes, and which letters were made and skipped."""

    config: ReconConfig
    preprocess: tuple[str, ...]
    applied: tuple[str, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Letter → why it was not applied."""

    def changed(self) -> bool:
        return bool(self.applied)


def _scene(sample_type: str, instrument: str, n_positions: int) -> Any:
    from ptychobench.sim.faults import Scene
    from ptychobench.sim.instruments import INSTRUMENTS, instrument_named
    from ptychobench.sim.objects import object_metadata

    try:
        strong = bool(object_metadata(sample_type)["strong_phase"])
    except (KeyError, ValueError):
        strong = False
    try:
        known = instrument_named(instrument)
    except ValueError:  # a real beamline: apply_fix reads only positions and strong phase
        known = next(iter(INSTRUMENTS.values()))
    return Scene(sample_type, known, n_positions, strong)


def apply_letters(
    config: ReconConfig,
    preprocess: Sequence[str],
    letters: Iterable[str],
    *,
    n_positions: int,
    sample_type: str = "",
    instrument: str = "",
) -> Applied:
    """``config`` and ``preprocess`` with each letter's change made, in the order given,
    by :func:`ptychobench.sim.faults.apply_fix`; a step already in ``preprocess`` is not
    added twice."""
    from ptychobench.sim.faults import Setup

    scene = _scene(sample_type, instrument, n_positions)
    start = Setup(config=config, preprocess=tuple(preprocess))  # type: ignore[arg-type]
    setup, applied, skipped = apply_to_setup(start, letters, scene)
    return Applied(setup.config, tuple(setup.preprocess), applied, skipped)


def apply_to_setup(
    setup: Setup, letters: Iterable[str], scene: Scene
) -> tuple[Setup, tuple[str, ...], dict[str, str]]:
    """A simulator setup with each letter's change made, in the order given (the rest of
    the setup, its measurement included, kept): the setup, the letters applied, and
    letter → why it was skipped (not an option letter, L, no implementation, already in
    effect). The one place letters become changes, for :func:`apply_letters` and the
    closed-loop benchmark on simulated samples."""
    from dataclasses import replace

    from ptychobench.sim.faults import apply_fix

    applied: list[str] = []
    skipped: dict[str, str] = {}
    for letter in letters:
        if letter not in OPTIONS:
            skipped[letter] = "not an option letter"
            continue
        if letter == NO_CHANGES:
            skipped[letter] = "no changes needed"
            continue
        try:
            changed = apply_fix(setup, letter, scene)
        except ValueError:
            skipped[letter] = f"no change is implemented for {letter} ({OPTIONS[letter]})"
            continue
        steps = tuple(dict.fromkeys(changed.preprocess))
        if changed.config == setup.config and steps == tuple(setup.preprocess):
            skipped[letter] = "already in effect"
            continue
        setup = replace(changed, preprocess=steps)
        applied.append(letter)
    return setup, tuple(applied), skipped


def options_diff(before: ReconConfig, after: ReconConfig) -> dict[str, list[Any]]:
    """Field → [before, after] for each option that differs (where it runs left out)."""
    old, new = before.model_dump(), after.model_dump()
    return {k: [old[k], new[k]] for k in old if k not in ENGINE_FIELDS and old[k] != new[k]}


def option_overrides(config: ReconConfig) -> dict[str, Any]:
    """``config`` as the reconstructor's ``options`` (every field but where it runs)."""
    return {k: v for k, v in config.model_dump().items() if k not in ENGINE_FIELDS}


def update_parameters(parameters: Mapping[str, str], config: ReconConfig) -> dict[str, str]:
    """The "Current Reconstruction Parameters" listing with the entries the options decide
    rewritten for ``config`` (others, and the order, kept)."""
    from ptychobench.sim.faults import config_parameters

    fresh = config_parameters(config)
    return {key: fresh.get(key, value) for key, value in parameters.items()}


__all__ = [
    "ARTIFACT_METRICS",
    "LETTER_TARGETS",
    "METRIC_FLOORS",
    "SHARES",
    "AcceptanceRule",
    "Applied",
    "ArtifactCheck",
    "Evidence",
    "Verdict",
    "apply_letters",
    "apply_to_setup",
    "judge",
    "option_overrides",
    "options_diff",
    "targeted_artifacts",
    "update_parameters",
]
