"""How a reconstruction reaches the service as an image, drawn per sample.

Beamlines do not send one kind of picture. The phase may be shown unwrapped (stretched
about its mean, as the benchmark set shows it) or wrapped into (−π, π]; in grey or
through a colormap; as an 8- or 16-bit PNG, a 16-bit TIFF or a JPEG; at the detector's
pixel size or resampled; cropped, flipped or turned. A model that only ever saw one
rendering learns the rendering. The corpus draws each sample's rendering from
:data:`RENDERINGS` ``["corpus"]``; the shifted set from ``["shifted"]``, whose colormaps,
sizes and phase displays no corpus sample has.

Only the phase is rendered: every label was confirmed on the phase (the simulator's
checks), so an amplitude picture could show none of them.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
FileFormat = Literal["png", "tiff", "jpeg"]
EXTENSIONS: Final[dict[str, str]] = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}


@dataclass(frozen=True)
class Rendering:
    """One way of showing a phase image."""

    wrapped: bool = False
    invert: bool = False
    colormap: str | None = None  # None: grey
    bit_depth: Literal[8, 16] = 8
    file_format: FileFormat = "png"
    size: int = 128
    crop: float = 1.0  # share of each side kept, about the centre
    quarter_turns: int = 0
    flip: bool = False

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.file_format]

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Choices:
    wrapped: float
    invert: float
    colormaps: tuple[tuple[str | None, float], ...]
    sixteen_bit: float  # of grey images
    jpeg: float
    tiff: float  # of 16-bit grey images
    sizes: tuple[int, ...]
    crop: tuple[float, float]
    cropped: float


RENDERINGS: Final[dict[str, _Choices]] = {
    "corpus": _Choices(
        wrapped=0.2,
        invert=0.1,
        colormaps=((None, 0.55), ("viridis", 0.15), ("inferno", 0.1), ("jet", 0.1), ("magma", 0.1)),
        sixteen_bit=0.3,
        jpeg=0.2,
        tiff=0.4,
        sizes=(128, 128, 192, 256, 256, 384),
        crop=(0.8, 1.0),
        cropped=0.5,
    ),
    "shifted": _Choices(
        wrapped=0.3,
        invert=0.15,
        colormaps=((None, 0.4), ("cividis", 0.15), ("hot", 0.15), ("bone", 0.15), ("turbo", 0.15)),
        sixteen_bit=0.4,
        jpeg=0.25,
        tiff=0.5,
        sizes=(160, 320, 448, 512),
        crop=(0.7, 0.95),
        cropped=0.6,
    ),
}


def draw_rendering(variation: str, seed: int, index: int) -> Rendering:
    """The rendering of sample ``index`` of a dataset made with ``seed`` (deterministic);
    the benchmark set (``"none"``) keeps its one rendering."""
    choices = RENDERINGS.get(variation)
    if choices is None:
        return Rendering()
    rng = np.random.default_rng([seed, index, 13])
    names = [name for name, _ in choices.colormaps]
    weights = np.array([weight for _, weight in choices.colormaps])
    colormap = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    sixteen = colormap is None and bool(rng.random() < choices.sixteen_bit)
    if sixteen:
        file_format: FileFormat = "tiff" if rng.random() < choices.tiff else "png"
    else:
        file_format = "jpeg" if rng.random() < choices.jpeg else "png"
    return Rendering(
        wrapped=bool(rng.random() < choices.wrapped),
        invert=bool(rng.random() < choices.invert),
        colormap=colormap,
        bit_depth=16 if sixteen else 8,
        file_format=file_format,
        size=int(rng.choice(choices.sizes)),
        crop=round(float(rng.uniform(*choices.crop)), 3) if rng.random() < choices.cropped else 1.0,
        quarter_turns=int(rng.integers(4)),
        flip=bool(rng.random() < 0.5),
    )


def phase_display(
    scaled: npt.ArrayLike, phase_range: tuple[float, float], rendering: Rendering
) -> FloatArray:
    """The picture in [0, 1] before colour and encoding: ``scaled`` is the canonical
    image (the phase's 1–99 % range, ``phase_range`` in radians, on 0–1)."""
    image = np.asarray(scaled, dtype=np.float64)
    if rendering.wrapped:
        low, high = phase_range
        phase = low + image * (high - low)
        image = (np.angle(np.exp(1j * phase)) + np.pi) / (2 * np.pi)
    if rendering.invert:
        image = 1.0 - image
    if rendering.crop < 1.0:
        h, w = image.shape
        kh, kw = max(8, round(h * rendering.crop)), max(8, round(w * rendering.crop))
        top, left = (h - kh) // 2, (w - kw) // 2
        image = image[top : top + kh, left : left + kw]
    image = np.rot90(image, rendering.quarter_turns)
    if rendering.flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def render(scaled: npt.ArrayLike, phase_range: tuple[float, float], rendering: Rendering) -> bytes:
    """The image file (bytes, in ``rendering.file_format``) that a beamline would send."""
    from PIL import Image

    image = phase_display(scaled, phase_range, rendering)
    size = (rendering.size, rendering.size)
    if rendering.colormap is not None:
        from matplotlib import colormaps

        rgb = colormaps[rendering.colormap](image)[..., :3]
        picture = Image.fromarray(np.rint(rgb * 255).astype(np.uint8), "RGB")
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    elif rendering.bit_depth == 16:
        grey = Image.fromarray(image.astype(np.float32), "F").resize(size, Image.Resampling.BICUBIC)
        values = np.clip(np.rint(np.asarray(grey) * 65535), 0, 65535).astype(np.uint16)
        picture = Image.fromarray(values)
    else:
        picture = Image.fromarray(np.rint(image * 255).astype(np.uint8), "L")
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    if rendering.file_format == "jpeg":
        picture.save(buffer, format="JPEG", quality=90)
    elif rendering.file_format == "tiff":
        picture.save(buffer, format="TIFF", compression="tiff_deflate")
    else:
        picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


__all__ = ["RENDERINGS", "Rendering", "draw_rendering", "phase_display", "render"]
