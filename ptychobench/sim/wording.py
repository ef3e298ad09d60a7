"""How people write the "Current Reconstruction Parameters", drawn per sample.

The benchmark set lists them one way (``name: value``, in one order). Facilities and
people do not: one pastes Pty-chi's option names, another writes full words with units,
another abbreviates, and the order is whatever their script printed. The corpus draws
one of :data:`STYLES` ``["corpus"]`` per sample and shuffles the lines half the time;
the shifted set uses styles no corpus sample has. Every style keeps every value, so no
information is lost, only its wording; each line stays ``name: value`` or
``name = value`` (what :func:`ptychobench.prompts.parse_parameters` reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np


@dataclass(frozen=True)
class Style:
    name: str
    names: Mapping[str, str]  # canonical name -> this style's (missing: kept)
    switches: tuple[str, str]  # how "on" and "off" are written
    separator: str = ": "
    bullet: str = ""
    units: bool = False  # "40 iterations", "25 positions"


_PTYCHI: Final = {
    "engine": "reconstructor",
    "iterations": "num_epochs",
    "batch size": "batch_size",
    "batch selection": "batching_mode",
    "momentum acceleration": "momentum_acceleration",
    "multimodal update": "multimodal_update",
    "position correction": "probe_position_options.optimizable",
    "affine constraint": "affine_transform_constraint",
    "probe modes": "num_probe_modes",
    "OPR modes": "num_opr_modes",
    "probe update starts at iteration": "probe_optimization_plan.start",
    "initial probe": "initial_probe",
    "noise model": "noise_model",
    "regularization": "object_regularization",
    "diffraction pattern size": "detector_shape",
    "scan": "scan",
    "object": "object_shape",
}
_VERBOSE: Final = {
    "engine": "Reconstruction engine",
    "iterations": "Number of iterations",
    "batch size": "Batch size",
    "batch selection": "Batch selection mode",
    "momentum acceleration": "Momentum acceleration",
    "multimodal update": "Multimodal object update",
    "position correction": "Probe position correction",
    "affine constraint": "Affine position constraint",
    "probe modes": "Number of probe modes",
    "OPR modes": "Orthogonal probe relaxation (OPR) modes",
    "probe update starts at iteration": "Probe refinement starts at iteration",
    "initial probe": "Initial probe guess",
    "noise model": "Noise model",
    "regularization": "Object regularisation",
    "diffraction pattern size": "Diffraction pattern size",
    "scan": "Scan",
    "object": "Object",
}
_TERSE: Final = {
    "iterations": "iters",
    "batch size": "bs",
    "batch selection": "batching",
    "momentum acceleration": "momentum",
    "multimodal update": "multimodal",
    "position correction": "pos. corr.",
    "affine constraint": "affine",
    "probe modes": "n probe modes",
    "OPR modes": "OPR",
    "probe update starts at iteration": "probe start iter",
    "initial probe": "probe init",
    "noise model": "noise",
    "regularization": "reg.",
    "diffraction pattern size": "det. size",
}
_CAMEL: Final = {
    "engine": "algorithm",
    "iterations": "nIterations",
    "batch size": "batchSize",
    "batch selection": "batchSelection",
    "momentum acceleration": "momentum",
    "multimodal update": "multimodalUpdate",
    "position correction": "positionCorrection",
    "affine constraint": "affineConstraint",
    "probe modes": "probeModes",
    "OPR modes": "oprModes",
    "probe update starts at iteration": "probeUpdateStart",
    "initial probe": "initialProbe",
    "noise model": "noiseModel",
    "regularization": "regularizer",
    "diffraction pattern size": "detectorSize",
    "scan": "scanPattern",
    "object": "objectSize",
}
_INI: Final = {
    "engine": "method",
    "iterations": "n_iter",
    "batch size": "batchsize",
    "batch selection": "batch_mode",
    "momentum acceleration": "use_momentum",
    "multimodal update": "mm_update",
    "position correction": "poscorr",
    "affine constraint": "poscorr_affine",
    "probe modes": "nmodes_probe",
    "OPR modes": "nmodes_opr",
    "probe update starts at iteration": "probe_start",
    "initial probe": "probe_guess",
    "noise model": "likelihood",
    "regularization": "obj_reg",
    "diffraction pattern size": "roi",
    "scan": "scan_type",
    "object": "obj_shape",
}

STYLES: Final[dict[str, tuple[Style, ...]]] = {
    "corpus": (
        Style("listing", {}, ("on", "off")),
        Style("ptychi", _PTYCHI, ("True", "False")),
        Style("verbose", _VERBOSE, ("enabled", "disabled"), bullet="- ", units=True),
        Style("terse", _TERSE, ("yes", "no")),
    ),
    "shifted": (
        Style("camel", _CAMEL, ("true", "false"), bullet="• "),
        Style("ini", _INI, ("1", "0"), separator=" = "),
    ),
}
_UNITS: Final = {"iterations": "iterations", "batch size": "positions"}


def draw_style(variation: str, seed: int, index: int) -> tuple[Style | None, bool]:
    """Sample ``index``'s style and whether its lines are shuffled (deterministic);
    ``None`` for the benchmark set, which keeps its one listing."""
    styles = STYLES.get(variation)
    if styles is None:
        return None, False
    rng = np.random.default_rng([seed, index, 17])
    return styles[int(rng.integers(len(styles)))], bool(rng.random() < 0.5)


def write_parameters(
    parameters: Mapping[str, str], style: Style | None, shuffle: bool, seed: int, index: int
) -> str:
    """The parameter listing of one sample in ``style`` (``None``: the benchmark's)."""
    items = list(parameters.items())
    if style is None:
        return "\n".join(f"{name}: {value}" for name, value in items)
    if shuffle:
        order = np.random.default_rng([seed, index, 19]).permutation(len(items))
        items = [items[int(i)] for i in order]
    lines = []
    for name, value in items:
        written = {"on": style.switches[0], "off": style.switches[1]}.get(value, value)
        if style.units and name in _UNITS and written.isdigit():
            written = f"{written} {_UNITS[name]}"
        lines.append(f"{style.bullet}{style.names.get(name, name)}{style.separator}{written}")
    return "\n".join(lines)


__all__ = ["STYLES", "Style", "draw_style", "write_parameters"]
