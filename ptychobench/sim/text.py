"""The words of a simulated sample: what an expert sees (``caption_obj``) and advises
(``caption_param``).

Phrasings run from terse to detailed, and some are as vague as real notes are. Every
``caption_param`` made here is read back by ``ptychobench.captions.letters_from_advice``
before it is used: :func:`caption_param` only returns advice that maps back to exactly
the intended letters (it tries the phrasings in a seeded order and fails loudly when
none does, which a test guards).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from ptychobench.captions import letters_from_advice
from ptychobench.labels import NO_ARTIFACTS, NO_CHANGES, canonical_order

_SEEN: Final[dict[str, tuple[str, ...]]] = {
    "Blurring": (
        "blurry",
        "the image is blurred",
        "fine features are smeared out and edges look soft",
        "resolution looks worse than expected, the smallest features are not resolved",
        "a bit fuzzy",
    ),
    "Low contrast": (
        "low contrast",
        "the phase contrast is weak",
        "features barely stand out from the background",
        "washed out, the contrast between features and background is low",
    ),
    "Halo artifacts": (
        "halos",
        "dark halos around the particles",
        "rims of opposite contrast surround the larger features",
        "features sit in dark moats, as if the low frequencies were missing",
        "some ringing around the edges",
    ),
    "Line artifacts": (
        "line artifacts",
        "streaks along the scan rows",
        "edges zig-zag from one scan line to the next",
        "horizontal line features that are not in the sample",
    ),
    "Local distortion": (
        "local distortions",
        "features are warped in places",
        "straight edges look bent and some shapes are distorted locally",
        "geometry looks off in parts of the field",
    ),
    "No clear structure": (
        "no clear structure",
        "cannot recognise the sample at all",
        "the image shows texture but nothing that looks like the sample",
        "reconstruction failed, there is no recognisable structure",
    ),
    "Noisy artifacts": (
        "noisy",
        "grainy high-frequency noise over the whole field",
        "speckle-like noise on top of the features",
        "noise everywhere, edges are ragged",
    ),
    "Non-uniform background": (
        "uneven background",
        "the background brightness varies in patches",
        "the empty regions are not flat: there are broad bright and dark areas",
        "background is blotchy",
    ),
    "Phase ramp": (
        "phase ramp",
        "a linear phase ramp runs across the image",
        "the background phase increases steadily from one side to the other",
        "there is a gradient across the whole field",
    ),
    "Singularity artifacts": (
        "singularities",
        "point-like phase singularities",
        "phase vortices, small dark points where the phase wraps around",
        "a few pinpoint defects in the phase",
    ),
    "Grid artifacts": (
        "grid artifacts",
        "a periodic grid pattern",
        "a regular grid at the raster step is printed over the sample",
        "checkerboard-like pattern",
    ),
}

_CLEAN: Final = (
    "looks good",
    "clean reconstruction, features are well resolved",
    "no obvious problems",
    "sharp and free of artifacts as far as I can tell",
    "good quality",
)

_ADVICE: Final[dict[str, tuple[str, ...]]] = {
    "K": (
        "Increase the number of iterations.",
        "Run it longer, it has not converged.",
        "Increase iterations from {iterations} to {more}.",
        "More iterations.",
    ),
    "G": (
        "Enable position correction.",
        "Turn on position correction.",
        "Refine the probe positions during the reconstruction.",
        "Position correction should be on.",
    ),
    "M": (
        "Recenter the diffraction patterns.",
        "The diffraction patterns look off-center; recenter them.",
        "Center the diffraction patterns before reconstructing.",
    ),
    "Q": (
        "Try other diffraction pattern orientations.",
        "Transpose the diffraction patterns.",
        "The orientation of the diffraction patterns is probably wrong; try other orientations.",
    ),
    "T": (
        "Turn on variable probe correction.",
        "Set OPR modes to 1.",
        "Enable variable probe correction to follow the beam intensity changes.",
    ),
    "J": (
        "Increase the number of probe modes.",
        "Use 3 probe modes.",
        "Add more probe modes for the partial coherence.",
    ),
    "P": (
        "Reduce the regularization.",
        "Turn off the regularization.",
        "The regularization is too strong, reduce it.",
    ),
    "U": (
        "Use the Gaussian noise model.",
        "Switch to the Gaussian noise model.",
        "Noise model should be Gaussian.",
    ),
    "N": (
        "Reduce the batch size.",
        "Use smaller batches.",
        "Decrease the batch size so the object is updated more often.",
    ),
    "H": (
        "Increase the batch size.",
        "Use larger batches.",
        "The batch size should be increased.",
    ),
    NO_CHANGES: (
        "No changes needed.",
        "The parameters look fine, keep them.",
        "Nothing to change.",
    ),
}

_JOIN: Final = (" ", " Also: ", " And ")


def caption_obj(artifacts: Sequence[str], sample_phrase: str, rng: np.random.Generator) -> str:
    """What an expert writes about the image: one line, terse to detailed."""
    labels = [label for label in artifacts if label != NO_ARTIFACTS]
    if not labels:
        seen = [str(rng.choice(_CLEAN))]
    else:
        seen = [str(rng.choice(_SEEN[label])) for label in labels]
    style = int(rng.integers(0, 3))
    if style == 0:  # terse notes
        return "; ".join(seen)
    text = ", ".join(seen[:-1]) + (" and " if len(seen) > 1 else "") + seen[-1]
    if style == 1:
        return text[0].upper() + text[1:] + "."
    return f"{sample_phrase}: {text}."


def caption_param(
    letters: Sequence[str], rng: np.random.Generator, parameters: dict[str, str]
) -> str:
    """Expert advice that ``letters_from_advice`` maps back to exactly ``letters``."""
    wanted = tuple(canonical_order(letters or (NO_CHANGES,), "recommendation"))
    iterations = int(parameters.get("iterations", "10") or 10)
    fill = {"iterations": iterations, "more": max(100, 10 * iterations)}
    for _attempt in range(20):
        order = list(wanted)
        rng.shuffle(order)
        parts = [str(rng.choice(_ADVICE[letter])).format(**fill) for letter in order]
        text = parts[0]
        for part in parts[1:]:
            joiner = str(rng.choice(_JOIN))
            text += joiner + (part[0].lower() + part[1:] if joiner == " And " else part)
        if letters_from_advice(text) == wanted:
            return text
    raise ValueError(f"no advice phrasing maps back to {list(wanted)}")  # pragma: no cover
