"""Minimal PNG encoding with numpy and zlib, so the library needs no imaging package."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def encode_png(image: npt.ArrayLike) -> bytes:
    """Encode an 8-bit greyscale (H, W) or RGB (H, W, 3) array as PNG.

    Floating-point input is taken to lie in [0, 1] and is scaled to 0–255.
    """
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
