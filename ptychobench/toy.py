"""A small built-in example dataset for smoke runs of the benchmark core.

The labels are drawn from per-sample-type priors (so sample-specific examples carry
information, as in the paper), the advice texts are written from the labels and mapped
back to letters by ``ptychobench.captions`` exactly as the paper's ground truth was
made, and each image is a 48×48 pattern that shows its labels in a cartoon way. It is
NOT physics: ``ptychobench.sim`` makes physically real data with Pty-chi. Everything is
fixed by the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from ptychobench.captions import letters_from_advice
from ptychobench.data.sample import Sample
from ptychobench.images import encode_png
from ptychobench.labels import NO_ARTIFACTS
from ptychobench.prompts import format_parameters

# sample type → (instrument, {artifact: probability})
PRIORS: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "Integrated circuit": (
        "APS-2IDE-XFM",
        {"Line artifacts": 0.6, "Halo artifacts": 0.5, "Local distortion": 0.3},
    ),
    "Siemens star": ("Velociprobe", {"Grid artifacts": 0.6, "Blurring": 0.3}),
    "NCM battery particles": (
        "Velociprobe",
        {"Halo artifacts": 0.6, "Low contrast": 0.5, "Non-uniform background": 0.3},
    ),
    "E. coli in starch": ("Bionanoprobe", {"Low contrast": 0.6, "Noisy artifacts": 0.4}),
    "Supercrystal": ("2-ID-D", {"Phase ramp": 0.5, "Grid artifacts": 0.3}),
    "Bilayer WSe2": ("2-ID-D", {"No clear structure": 0.4, "Singularity artifacts": 0.3}),
}

# artifact → advice sentence (the letters come back through captions.letters_from_advice)
ADVICE: Final[dict[str, str]] = {
    "Grid artifacts": "Use the sparse batch selection scheme.",
    "Halo artifacts": "Increase the number of iterations.",
    "Line artifacts": "Enable position correction.",
    "Local distortion": "Enable position correction.",
    "Low contrast": "Increase the number of iterations.",
    "No clear structure": "Try other diffraction pattern orientations.",
    "Noisy artifacts": "Increase the number of probe modes.",
    "Non-uniform background": "Turn on variable probe correction with one OPR mode.",
    "Phase ramp": "Recenter the diffraction patterns.",
    "Singularity artifacts": "Use the Gaussian noise model.",
    "Blurring": "Reduce the regularization.",
}


def _draw_labels(rng: np.random.Generator, priors: dict[str, float]) -> tuple[str, ...]:
    labels = tuple(label for label, p in priors.items() if rng.random() < p)
    return labels or (NO_ARTIFACTS,)


def _image(rng: np.random.Generator, labels: tuple[str, ...]) -> npt.NDArray[np.float64]:
    y, x = np.mgrid[0:48, 0:48] / 48.0
    image = 0.5 + 0.2 * np.sin(12 * x) * np.cos(9 * y) + 0.05 * rng.standard_normal((48, 48))
    if "Grid artifacts" in labels:
        image += 0.2 * ((np.arange(48) % 6 == 0)[None, :] | (np.arange(48) % 6 == 0)[:, None])
    if "Line artifacts" in labels:
        image += 0.25 * (np.arange(48) % 8 < 2)[None, :]
    if "Phase ramp" in labels:
        image += 0.4 * x
    if "Noisy artifacts" in labels:
        image += 0.2 * rng.standard_normal((48, 48))
    if "Low contrast" in labels:
        image = 0.5 + 0.3 * (image - 0.5)
    clipped: npt.NDArray[np.float64] = np.clip(image, 0.0, 1.0)
    return clipped


def make_toy_samples(images_dir: Path, per_type: int = 12, seed: int = 0) -> list[Sample]:
    """``per_type`` samples of each sample type, images written as PNG into ``images_dir``."""
    rng = np.random.default_rng(seed)
    images_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for type_index, (sample_type, (instrument, priors)) in enumerate(PRIORS.items()):
        for i in range(per_type):
            labels = _draw_labels(rng, priors)
            advice = " ".join(dict.fromkeys(ADVICE[a] for a in labels if a in ADVICE))
            advice = advice or "The reconstruction looks good; no changes needed."
            sample_id = f"toy{type_index:02d}{i:03d}"
            path = images_dir / f"{sample_id}-object_ph_Niter400.png"
            path.write_bytes(encode_png(_image(rng, labels)))
            samples.append(
                Sample(
                    id=sample_id,
                    image=path,
                    sample_type=sample_type,
                    instrument=instrument,
                    artifacts=labels,
                    caption_obj=f"A {sample_type.lower()} reconstruction.",
                    caption_param=advice,
                    options=letters_from_advice(advice),
                    parameters=format_parameters(
                        {"algorithm": "LSQML", "num_epochs": 100, "batch_size": 96}
                    ),
                )
            )
    return samples
