"""The canonical picture of a reconstruction: any decoded image as a scalar phase picture.

Beamlines send the phase in grey or through a colormap (see `ptychobench.sim.render`).
The classifier reads one scalar picture in [0, 1]; this module turns what arrived into
that picture, so that a detector learns the artifact and not the rendering:

- grey, or colour whose channels are equal within `GREY_TOLERANCE` (a grey JPEG saved as
  RGB): the grey, as it is;
- colour: the colormap is inverted. A fixed draw of `FIT_SAMPLE` pixels is fitted
  against every map of `BANK` (matplotlib's tables, `TABLE_SIZE` entries each; first on
  every `COARSE`-th entry, then the `SHORTLIST` nearest maps on all); the map with the
  smallest mean colour distance is chosen, and each distinct colour of the picture is
  read as the scalar of its nearest table entry (a 512² JPEG takes about 0.1 s). A map
  read backwards (``viridis_r``) is the same curve, so it needs no entry of its own: it
  comes back as ``1 - v``, as an inverted grey picture does. A cyclic map's ends meet,
  and where it starts cannot be told from colour (``twilight_shifted`` is ``twilight``
  half a turn on, so it is left out: it would read as twilight, offset by half);
- colour that no map of the bank fits within `MAX_RESIDUAL` (a colormap outside the bank,
  a photograph), or with fewer than `MIN_COLOURS` distinct colours (too few to tell a
  curve): Rec. 601 luminance, as the intake did before, with ``method="luminance"``.

Phase wrapping is not undone: the wrap detectors measured (``benchmarks/canonical.py``)
fired on 15-22 % of PtychoBench-Sim's unwrapped pictures, whose sharp edges jump like
wraps, at the thresholds that catch 99 % of wrapped ones (``docs/classifier.md``).

Numpy only at import; matplotlib's colormap tables are read on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
Method = Literal["grey", "colormap", "luminance"]

BANK: Final[tuple[str, ...]] = (
    # perceptually uniform sequential
    "viridis",
    "plasma",
    "inferno",
    "magma",
    "cividis",
    # rainbows
    "jet",
    "turbo",
    "rainbow",
    "nipy_spectral",
    "gist_rainbow",
    # heat and metal
    "hot",
    "afmhot",
    "gist_heat",
    "bone",
    "copper",
    "pink",
    "gnuplot",
    "gnuplot2",
    "CMRmap",
    "cubehelix",
    # grey (equal channels: caught as grey before any fit, kept for completeness)
    "gray",
    "Greys",
    # other sequential
    "ocean",
    "terrain",
    "gist_earth",
    "YlGnBu",
    "Blues",
    "summer",
    "winter",
    "cool",
    # diverging
    "coolwarm",
    "bwr",
    "RdBu",
    "seismic",
    "Spectral",
    "RdYlBu",
    "RdYlGn",
    "PiYG",
    "PRGn",
    "PuOr",
    "BrBG",
    "berlin",
    "managua",
    "vanimo",
    # cyclic
    "twilight",
    "hsv",
)
"""The colormaps that are inverted (forward direction only; reversals read as 1 - v)."""

TABLE_SIZE: Final = 256
"""Entries of each colormap's table: the scalar is read to 1/255, as an 8-bit grey."""
GREY_TOLERANCE: Final = 4 / 255
"""Colour whose channels differ by at most this (99th percentile over pixels) is grey."""
MAX_RESIDUAL: Final = 0.08
"""The largest mean RGB distance (channels on 0-1) from the pixels to the chosen map's
curve for the fit to be trusted; above it, luminance. A smooth picture sits within 0.02
of its map even as a JPEG, but a noisy reconstruction resampled in colour does not
(bicubic resampling mixes colours far apart along the map: turbo's median is 0.03, its
90th percentile 0.08). Measured on 30 PtychoBench-Sim images in corpus and shifted
geometries through 10 maps of the bank and 10 outside it, mean |r| with the truth went
from 0.894 (bank) and 0.789 (outside) at 0.03 to 0.960 and 0.773 at 0.08; photographs
and maps like no map of the bank (brg, gist_ncar, prism, qualitative maps) stay above
it."""
MIN_COLOURS: Final = 16
"""Fewer distinct colours than this and no colormap is inferred (luminance)."""
FIT_SAMPLE: Final = 1024
"""Pixels (a fixed draw) the maps are compared on; every distinct colour is then read."""
COARSE: Final = 4
SHORTLIST: Final = 4
"""The maps are first compared on every `COARSE`-th table entry; the `SHORTLIST`
nearest are then compared on all of them."""
LUMINANCE: Final = np.array([0.299, 0.587, 0.114])
_CHUNK: Final = 16384


@dataclass(frozen=True)
class Canonical:
    """The scalar picture and how it was found."""

    pixels: FloatArray
    """(H, W), float in [0, 1]."""
    method: Method
    colormap: str | None = None
    """The map inverted (``method == "colormap"``), else ``None``."""
    residual: float | None = None
    """Mean RGB distance (0-1 channels) of the pixels to the best map of the bank,
    whether or not it was used; ``None`` for grey input or too few colours."""


def canonical(image: npt.ArrayLike) -> Canonical:
    """The canonical picture of a decoded image: (H, W) grey or (H, W, 3|4) colour, as
    ``uint8`` or ``uint16`` (full range) or floats in [0, 1] (alpha is ignored)."""
    array = np.asarray(image)
    if array.ndim == 2:
        return Canonical(_unit(array), "grey")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 3|4) image; got shape {array.shape}")
    rgb = _unit(array[..., :3])
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    if float(np.percentile(spread, 99)) <= GREY_TOLERANCE:
        return Canonical(rgb.mean(axis=-1), "grey")
    return invert_colormap(rgb)


def invert_colormap(rgb: FloatArray) -> Canonical:
    """Fit ``rgb`` (H, W, 3) on 0-1 against `BANK` and read it through the best map,
    or its luminance when no map fits (see the module's docstring)."""
    codes = _codes(rgb)
    colours, inverse = np.unique(codes, return_inverse=True)
    if len(colours) < MIN_COLOURS:
        return Canonical(_luminance(rgb), "luminance")
    names, tables = colormap_tables()
    sample = _fit_sample(codes)
    best, residual = _best_fit(sample, tables)
    if residual > MAX_RESIDUAL:
        return Canonical(_luminance(rgb), "luminance", residual=residual)
    index = np.concatenate(
        [
            _nearest(_colours(colours[start : start + _CHUNK]), tables[best])[0]
            for start in range(0, len(colours), _CHUNK)
        ]
    )
    scalar = index / (TABLE_SIZE - 1.0)
    pixels = scalar[inverse.reshape(-1)].reshape(rgb.shape[:2])
    return Canonical(pixels, "colormap", names[best], residual)


def _best_fit(sample: Float32Array, tables: Float32Array) -> tuple[int, float]:
    """The map of ``tables`` nearest to the sample's colours, and that mean distance:
    every map on every `COARSE`-th entry and a quarter of the sample, then the
    `SHORTLIST` nearest on all entries and the whole sample."""
    part = sample[: max(len(sample) // 4, MIN_COLOURS)]
    coarse = [_mean_distance(part, table[::COARSE]) for table in tables]
    shortlist = np.argsort(coarse, kind="stable")[:SHORTLIST]
    fine = [_mean_distance(sample, tables[m]) for m in shortlist]
    best = int(np.argmin(fine))
    return int(shortlist[best]), round(fine[best], 6)


def _mean_distance(colours: Float32Array, table: Float32Array) -> float:
    return float(np.sqrt(_nearest(colours, table)[1]).mean())


@functools.cache
def colormap_tables() -> tuple[tuple[str, ...], Float32Array]:
    """`BANK`'s names and their tables, (maps, `TABLE_SIZE`, 3) RGB on 0-1 (float32:
    the distances are only compared, and 8-bit colour needs no more)."""
    from matplotlib import colormaps

    steps = np.linspace(0.0, 1.0, TABLE_SIZE)
    tables = np.stack([np.asarray(colormaps[name](steps))[:, :3] for name in BANK])
    return BANK, tables.astype(np.float32)


def _unit(array: npt.NDArray[np.generic]) -> FloatArray:
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float64) / 65535.0
    return np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0)


def _luminance(rgb: FloatArray) -> FloatArray:
    return np.asarray(rgb @ LUMINANCE, dtype=np.float64)


def _codes(rgb: FloatArray) -> npt.NDArray[np.int64]:
    """Each pixel's colour to 8 bits a channel, packed into one integer."""
    levels = np.rint(rgb.reshape(-1, 3) * 255.0).astype(np.int64)
    return np.asarray((levels[:, 0] << 16) | (levels[:, 1] << 8) | levels[:, 2])


def _colours(codes: npt.NDArray[np.int64]) -> Float32Array:
    channels = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1)
    return channels.astype(np.float32) / np.float32(255.0)


def _fit_sample(codes: npt.NDArray[np.int64]) -> Float32Array:
    """The colours of `FIT_SAMPLE` pixels, drawn the same way for every call."""
    if len(codes) > FIT_SAMPLE:
        codes = codes[np.random.default_rng(0).choice(len(codes), FIT_SAMPLE, replace=False)]
    return _colours(codes)


def _nearest(
    colours: Float32Array, table: Float32Array
) -> tuple[npt.NDArray[np.intp], Float32Array]:
    """For each colour (n, 3), the index of the nearest table entry and its squared
    distance. The products are summed by hand: a (n, 3) @ (3, m) product gains nothing
    from BLAS, whose threads stall when the machine is busy."""
    cross = sum(colours[:, k, None] * table[None, :, k] for k in range(3))
    partial = np.sum(table**2, axis=1)[None, :] - 2.0 * cross
    index = np.argmin(partial, axis=1)
    squared = np.take_along_axis(partial, index[:, None], axis=1)[:, 0]
    return index, np.maximum(squared + np.sum(colours**2, axis=1), 0.0)


__all__ = [
    "BANK",
    "GREY_TOLERANCE",
    "MAX_RESIDUAL",
    "Canonical",
    "canonical",
    "colormap_tables",
    "invert_colormap",
]
