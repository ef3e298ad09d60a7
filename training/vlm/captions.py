"""The pretraining captions: what a beamline scientist would say an image is (sample
type, instrument, scan) and four appearance words measured from its pixels (grey range,
detail, grain, background gradient). No artifact label is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from ptychobench.data import Sample

DESCRIBE_PROMPT: Final = (
    "Describe this ptychographic reconstruction: the sample, the instrument, the scan and "
    "how the image looks."
)

APPEARANCE: Final = {
    "range": ("narrow grey range", "medium grey range", "wide grey range"),
    "detail": ("soft detail", "moderate detail", "crisp detail"),
    "grain": ("smooth texture", "some fine texture", "grainy texture"),
    "gradient": ("flat background", "slightly graded background", "strongly graded background"),
}
"""Words for each measured property, by tertile of the pretraining images (worded so that
no artifact label appears)."""


def measure(pixels: np.ndarray) -> dict[str, float]:
    """Four generic properties of a greyscale image in [0, 1], from its pixels alone:
    grey range (standard deviation), detail (mean gradient over the range), grain (share
    of spectral power above a quarter of the Nyquist band) and background gradient (slope
    of a fitted plane, per image width)."""
    image = pixels.astype(np.float64)
    height, width = image.shape
    spread = float(image.std())
    gy, gx = np.gradient(image)
    detail = float(np.hypot(gx, gy).mean() / max(spread, 1e-6))
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    grain = float(spectrum[np.hypot(fx, fy) > 0.125].sum() / max(spectrum.sum(), 1e-12))
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    design = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], axis=1)
    (a, b, _), *_ = np.linalg.lstsq(design, image.ravel(), rcond=None)
    return {"range": spread, "detail": detail, "grain": grain, "gradient": math.hypot(a, b)}


def tertiles(measured: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """The 1/3 and 2/3 quantiles of each property (the word boundaries)."""
    return {
        key: [round(float(q), 6) for q in np.quantile([m[key] for m in measured], [1 / 3, 2 / 3])]
        for key in APPEARANCE
    }


def describe(sample: Sample, measured: dict[str, float], bounds: dict[str, list[float]]) -> str:
    """The pretraining caption: what a beamline scientist would say the image is, and how
    it looks. Artifact labels, faults and expert captions are not used."""
    scan = _parameter(sample.parameters, "scan") or "unknown"
    words = [
        APPEARANCE[key][int(np.searchsorted(bounds[key], measured[key]))] for key in APPEARANCE
    ]
    return (
        f"Sample: {sample.sample_type}. Instrument: {sample.instrument or 'unknown'}. "
        f"Scan: {scan}. Appearance: {', '.join(words)}."
    )


def _parameter(block: str, name: str) -> str | None:
    for line in block.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lstrip("-").strip().lower() == name:
            return value.strip()
    return None


def grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
