"""Image formats told by magic number (the project's one table), and minimal PNG
encoding with numpy and zlib, so the library needs no imaging package."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy.typing as npt


SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",
    b"MM\x00+": "tiff",
    b"\x93NUMPY": "npy",
    b"GIF8": "gif",
}
"""Magic number -> format: what :mod:`ptychobench.decode` reads, what a ``data:`` URL
names, what the gateway answers an image with."""
MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
"""Format -> media type; a format without one (``npy``) is ``application/octet-stream``."""
DECODABLE = ("png", "jpeg", "tiff", "npy")
"""The formats :func:`ptychobench.decode.decode_image` reads (uploads are one of these)."""


def image_format(data: bytes) -> str | None:
    """The format of image bytes, told by magic number (``None``: none we know)."""
    for magic, name in SIGNATURES.items():
        if data.startswith(magic):
            return name
    return None


def media_type(fmt: str) -> str:
    """The media type of an image format (as :func:`image_format` names it)."""
    return MEDIA_TYPES.get(fmt.lower(), "application/octet-stream")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def encode_png(image: npt.ArrayLike) -> bytes:
    """Encode an 8-bit greyscale (H, W) or RGB (H, W, 3) array as PNG.

    Floating-point input is taken to lie in [0, 1] and is scaled to 0–255.
    """
    import numpy as np  # here: the format table above is read by the light modules

    array = np.asarray(image)
    if array.dtype.kind == "f":
        array = np.clip(np.rint(array * 255.0), 0, 255)
    array = array.astype(np.uint8)
    if array.ndim == 2:
        colour_type = 0
    elif array.ndim == 3 and array.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"expected an (H, W) or (H, W, 3) array, got shape {array.shape}")
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )
