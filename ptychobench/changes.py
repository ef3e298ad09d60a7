"""What each recommendation option (A–X) means for a Pty-chi reconstruction, as a
structured diff a reconstruction script can apply.

The paper's options are words ("Enable position correction"); a beamline script needs
the option to set. Each letter maps to changes of three kinds:

* ``option`` — an attribute of Pty-chi's task options (``ptychi.api`` ``LSQMLOptions``
  and friends, 2.2), by dotted path from the options object, e.g.
  ``probe_position_options.optimizable``;
* ``probe`` — the shape of the initial probe (``probe_data`` is
  ``(n_opr_modes, n_modes, h, w)``);
* ``data`` — preprocessing of the diffraction patterns before the task is built.

``op`` says how to change the value: ``set`` it, ``multiply`` or ``divide`` it by
``value``, or ``add`` ``value`` to it. The paths and values are the ones
``ptychobench.sim`` itself uses to verify that a fix works (``sim.reconstruct.build_options``
and ``sim.faults.apply_fix``), where it implements one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from ptychobench.labels import OPTIONS

Target = Literal["option", "probe", "data"]
Op = Literal["set", "multiply", "divide", "add"]


@dataclass(frozen=True)
class Change:
    """One change to a reconstruction's setup."""

    target: Target
    path: str
    op: Op
    value: Any
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RO = "reconstructor_options"
_PP = "probe_position_options"
_OPR = "opr_mode_weight_options"

CHANGES: Final[dict[str, tuple[Change, ...]]] = {
    "A": (
        Change("option", f"{_RO}.batch_size", "set", "n_positions", "one batch of all positions"),
    ),
    "B": (Change("option", f"{_RO}.momentum_acceleration_gain", "set", 0.0, "LSQML only"),),
    "C": (Change("option", "object_options.multimodal_update", "set", False),),
    "D": (Change("option", f"{_PP}.optimizable", "set", False),),
    "E": (
        Change(
            "option",
            f"{_RO}.momentum_acceleration_gain",
            "set",
            0.5,
            "LSQML only; a gain of 0.5 is a common start",
        ),
    ),
    "F": (Change("option", "object_options.multimodal_update", "set", True),),
    "G": (
        Change("option", f"{_PP}.optimizable", "set", True),
        Change("option", f"{_PP}.optimization_plan.start", "set", 2, "after the probe settles"),
        Change("option", f"{_PP}.correction_options.update_magnitude_limit", "set", 0.5, "px"),
    ),
    "H": (Change("option", f"{_RO}.batch_size", "multiply", 2),),
    "I": (
        Change("probe", "n_opr_modes", "add", 1, "probe_data.shape[0]"),
        Change("option", f"{_OPR}.optimizable", "set", True),
    ),
    "J": (Change("probe", "n_modes", "add", 1, "incoherent modes, probe_data.shape[1]"),),
    "K": (Change("option", f"{_RO}.num_epochs", "multiply", 2),),
    "L": (),
    "M": (
        Change(
            "data", "recenter", "set", True, "shift each pattern's centre of mass to the centre"
        ),
    ),
    "N": (Change("option", f"{_RO}.batch_size", "divide", 2),),
    "O": (
        Change("data", "pattern_size", "divide", 2, "crop (or bin) the patterns to half the size"),
    ),
    "P": (
        Change("option", "object_options.total_variation.enabled", "set", False),
        Change("option", "object_options.smoothness_constraint.enabled", "set", False),
    ),
    "Q": (Change("data", "orientation", "set", "transpose", "also try the flips"),),
    "R": (Change("option", f"{_PP}.affine_transform_constraint.enabled", "set", False),),
    "S": (
        Change("probe", "n_opr_modes", "set", 1, "main mode only"),
        Change("option", f"{_OPR}.optimizable", "set", False),
    ),
    "T": (
        Change("probe", "n_opr_modes", "set", 2, "main mode + one eigenmode"),
        Change("option", f"{_OPR}.optimizable", "set", True),
        Change("option", f"{_OPR}.optimize_eigenmode_weights", "set", True),
    ),
    "U": (Change("option", f"{_RO}.noise_model", "set", "GAUSSIAN", "api.NoiseModels"),),
    "V": (Change("option", f"{_RO}.batching_mode", "set", "COMPACT", "api.BatchingModes"),),
    "W": (
        Change(
            "option",
            "object_options.slice_spacings_m",
            "set",
            "per sample thickness",
            "multislice: an object with more than one slice and their spacings",
        ),
    ),
    "X": (
        Change(
            "option",
            f"{_RO}.batching_mode",
            "set",
            "UNIFORM",
            "api.BatchingModes: positions spread over the scan",
        ),
    ),
}
"""Letter → changes. Every letter of the paper's options has an entry."""


def changes_for(letters: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The changes of each letter, as plain dicts (for JSON)."""
    out = {}
    for letter in letters:
        if letter not in OPTIONS:
            raise ValueError(f"{letter!r} is not an option letter (A–X)")
        out[letter] = [change.to_dict() for change in CHANGES[letter]]
    return out
