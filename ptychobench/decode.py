"""Image intake: an image file (what a beamline posts, what a dataset holds) turned into
what the models see; the diagnosis service, the classifier's training and the benchmarks
read images with this one decoder.

Accepted: PNG and JPEG (grey, 16-bit grey, RGB, palette), TIFF (8/16/32-bit integer,
float, contiguous or planar, stripped or tiled, first page; read with tifffile) and
NumPy ``.npy`` arrays (real or complex; a complex array is an object transmission
function and its phase is taken). Every size a header declares (width, height, samples,
planes, depth, tiles, every axis of an array) is checked against the limits before a
byte is decoded, so a decompression bomb is refused at the header; ``.npy`` data is
viewed in place after its header, never unpickled.

The result has two views: ``pixels``, a grey (H, W) float image in [0, 1] (what the
classifier reads; 8-bit input is divided by 255, anything else is stretched between its
1st and 99th percentiles, as PtychoBench-Sim's images were made; colour is read back
through its colormap by `ptychobench.canonical`, the function the classifier's training
loader uses too, and ``colormap`` says which map it found), and ``png``, the 8-bit PNG
the vision-language model is sent (an 8-bit PNG upload is passed through as it came).

Bad input raises :class:`ImageError` (``status`` says which HTTP answer a service makes
of it: 413 too large, 415 not an image format we read, 422 anything else); the services
translate it into their own exception tree at the edge.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ptychobench.canonical import canonical
from ptychobench.images import DECODABLE, encode_png, image_format

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
MIN_SIDE = 16
MAX_SAMPLES = 4
"""Values a pixel may hold (grey, grey + alpha, RGB, RGBA): with ``max_pixels``, the
bound on what a header may declare over all its axes."""
NUMERIC = "biufc"
REFUSED = "decompression bombs are refused before decoding"


class ImageError(Exception):
    """An image that cannot be read; ``status`` is the HTTP status a service answers."""

    status = 422


class InvalidImageError(ImageError):
    """Corrupt, empty, too small, not an image layout, not numeric, not finite (422)."""


class ImageTooLargeError(ImageError):
    """Over the byte or pixel limit, or a decompression bomb (413)."""

    status = 413


class UnsupportedImageError(ImageError):
    """No format this decoder reads (415)."""

    status = 415


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20_000_000
    max_pixels: int = 4096 * 4096


TRAINING_LIMITS = ImageLimits(max_bytes=2**31, max_pixels=16384 * 16384)
"""For files a training run reads from its own dataset: the same decoding, looser caps."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: FloatArray
    """Grey, (H, W), float in [0, 1]."""
    png: bytes
    """8-bit PNG for the vision-language model."""
    format: str
    mode: str
    """``grey``, ``rgb`` or ``complex`` (phase taken)."""
    sha256: str
    """Of the bytes as uploaded."""
    colormap: str | None = None
    """The colormap a colour picture was read through (`ptychobench.canonical`);
    ``None`` for grey, for colour read as luminance, and for complex arrays."""

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def sniff(data: bytes) -> str:
    """The format, told by magic number (one of ``DECODABLE``)."""
    kind = image_format(data)
    if kind not in DECODABLE:
        raise UnsupportedImageError(
            "the image is not PNG, JPEG, TIFF or a NumPy .npy array (unknown magic number "
            f"{data[:8]!r})"
        )
    return kind


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Check and decode an uploaded image (raises 4xx ``ServiceError`` on bad input)."""
    if not data:
        raise InvalidImageError("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"the image has {len(data):,} bytes; the limit is {limits.max_bytes:,}"
        )
    kind = sniff(data)
    reader = {"png": read_pil, "jpeg": read_pil, "tiff": read_tiff, "npy": _read_npy}[kind]
    array, passthrough = reader(data, limits, kind)
    pixels, colour, mode, colormap = normalise(array)
    if min(pixels.shape) < MIN_SIDE:
        raise InvalidImageError(
            f"the image is {pixels.shape[1]} x {pixels.shape[0]} pixels; at least "
            f"{MIN_SIDE} x {MIN_SIDE} is needed"
        )
    png = data if passthrough else encode_png(colour if colour is not None else pixels)
    return DecodedImage(pixels, png, kind, mode, hashlib.sha256(data).hexdigest(), colormap)


def _check_declared(
    shape: Sequence[int], limits: ImageLimits, kind: str, *, layout: bool = True
) -> None:
    """Refuse an image by the sizes its header declares, before a byte is decoded.

    ``shape`` is in the order the decoder gives (samples last). Every axis counts: the
    values over all of them (samples, planes, slices, a tile) are held to
    ``max_pixels * MAX_SAMPLES``, and the (H, W) plane of an image layout to
    ``max_pixels`` (413). With ``layout``, a shape that is no (H, W) or (H, W, 3|4) image
    is refused (422) from the header, not after decoding."""
    dims = _squeezed(tuple(int(n) for n in shape))
    if any(n <= 0 for n in dims):
        raise InvalidImageError(f"the {kind} declares shape {tuple(shape)}: it holds no pixels")
    if len(dims) == 2 or (len(dims) == 3 and dims[-1] <= MAX_SAMPLES):
        pixels = dims[0] * dims[1]
        if pixels > limits.max_pixels:
            raise ImageTooLargeError(
                f"the {kind} is {dims[1]} x {dims[0]} = {pixels:,} pixels; the limit is "
                f"{limits.max_pixels:,} ({REFUSED})"
            )
    values = math.prod(dims)
    if values > limits.max_pixels * MAX_SAMPLES:
        raise ImageTooLargeError(
            f"the {kind} declares shape {tuple(shape)}: {values:,} values; the limit is "
            f"{limits.max_pixels:,} pixels x {MAX_SAMPLES} samples ({REFUSED})"
        )
    if layout and len(dims) < 2:
        raise InvalidImageError(f"the {kind} holds an array of shape {tuple(shape)}, not an image")
    if layout and not _is_image(dims):
        raise _not_an_image(tuple(shape))


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of an image array that are not 1 (a 2-D shape as it is)."""
    return tuple(n for n in shape if n != 1) if len(shape) > 2 else shape


def _is_image(shape: tuple[int, ...]) -> bool:
    """Grey (H, W) or colour (H, W, 3|4): what :func:`normalise` reads."""
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))


def _not_an_image(shape: tuple[int, ...]) -> InvalidImageError:
    return InvalidImageError(
        f"expected a 2-D image (H, W) or a colour image (H, W, 3|4); got shape {shape}"
    )


def read_pil(data: bytes, limits: ImageLimits, kind: str) -> tuple[npt.NDArray[Any], bool]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind.upper()])
            width, height = image.size
            bands = len(image.getbands())
            _check_declared((height, width, bands), limits, image.format or kind, layout=False)
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(
            f"the image is a decompression bomb: {error} ({REFUSED})"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(f"the image could not be decoded: {error}") from error
    passthrough = image.format == "PNG" and image.mode in ("L", "RGB")
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBA", "LA", "1"):
        return np.asarray(image.convert("L" if image.mode in ("LA", "1") else "RGB")), False
    return np.asarray(image), passthrough


def read_tiff(data: bytes, limits: ImageLimits, kind: str) -> tuple[npt.NDArray[Any], bool]:
    """The first page (the others are not read), planar samples moved last."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            try:
                page = tiff.pages.first
            except IndexError:
                raise InvalidImageError("the TIFF has no pages") from None
            planes, depth, height, width, samples = page.shaped
            _check_declared((depth, height, width, planes * samples), limits, "TIFF")
            _check_declared(page.chunks, limits, "TIFF tile", layout=False)
            array = page.asarray()
    except ImageError:
        raise
    except Exception as error:  # tifffile raises many kinds for a corrupt file
        raise InvalidImageError(f"the TIFF could not be decoded: {error}") from error
    if planes > 1:
        array = np.moveaxis(array, 0, -1)
    return np.asarray(array), False


def _read_npy(data: bytes, limits: ImageLimits, kind: str) -> tuple[npt.NDArray[Any], bool]:
    """Read from the header, then viewed in place: numpy's reader would allocate the
    declared size before it finds the data missing."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = header(stream)
    except ValueError as error:
        raise InvalidImageError(f"the .npy file could not be read: {error}") from error
    if dtype.hasobject:
        raise InvalidImageError("the .npy array holds Python objects; a numeric array is needed")
    if dtype.kind not in NUMERIC or dtype.subdtype is not None:
        raise InvalidImageError(f"the array's dtype {dtype} is not numeric")
    _check_declared(shape, limits, ".npy array")
    declared, held = math.prod(shape) * dtype.itemsize, len(data) - stream.tell()
    if declared > held:
        raise InvalidImageError(
            f"the .npy header declares {shape} {dtype} = {declared:,} bytes; the file holds "
            f"{held:,}"
        )
    array = np.frombuffer(data, dtype, math.prod(shape), stream.tell())
    return array.reshape(shape, order="F" if fortran else "C"), False


def normalise(
    array: npt.NDArray[Any],
) -> tuple[FloatArray, npt.NDArray[np.uint8] | None, str, str | None]:
    """Grey [0, 1] pixels, the 8-bit RGB image when there is colour, the mode, and the
    colormap a colour picture was read through."""
    if array.ndim > 2:
        array = np.squeeze(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype.kind in "uif":
        rgb = array[..., :3]
        unit = to_unit(rgb)
        found = canonical(rgb if rgb.dtype in (np.uint8, np.uint16) else unit)
        if found.method == "luminance":
            logger.info(
                "no colormap fits the colour image (residual %s): luminance", found.residual
            )
        return found.pixels, np.rint(unit * 255).astype(np.uint8), "rgb", found.colormap
    if array.ndim != 2:
        raise _not_an_image(array.shape)
    if array.dtype.kind == "c":
        finite = np.isfinite(array)
        if not finite.all():
            raise InvalidImageError("the complex array holds NaN or infinite values")
        mean = np.mean(array)
        phase = np.angle(array * np.conj(mean / (abs(mean) + 1e-12)))
        return _stretch(phase), None, "complex", None
    if array.dtype.kind not in NUMERIC:
        raise InvalidImageError(f"the array's dtype {array.dtype} is not numeric")
    return to_unit(array), None, "grey", None


def to_unit(array: npt.NDArray[Any]) -> FloatArray:
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype.kind == "b":
        return array.astype(np.float64)
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise InvalidImageError("the image holds NaN or infinite values")
    return _stretch(values)


def _stretch(values: FloatArray) -> FloatArray:
    low, high = np.percentile(values, [1, 99])
    if high - low < 1e-12:
        low, high = float(values.min()), float(values.max())
    scale = max(high - low, 1e-12)
    return np.asarray(np.clip((values - low) / scale, 0.0, 1.0), dtype=np.float64)
