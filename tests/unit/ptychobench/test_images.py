from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from ptychobench.images import encode_png


def _decode(png: bytes) -> tuple[int, int, int, bytes]:
    """Minimal PNG reader for the files encode_png writes (one IDAT, filter 0)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        payload = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks[kind] = payload
        offset += 12 + length
    width, height, _depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    return width, height, colour, zlib.decompress(chunks[b"IDAT"])


def test_greyscale_round_trip() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    width, height, colour, raw = _decode(encode_png(image))
    assert (width, height, colour) == (4, 3, 0)
    rows = np.frombuffer(raw, np.uint8).reshape(3, 5)
    assert (rows[:, 0] == 0).all()
    np.testing.assert_array_equal(rows[:, 1:], image)


def test_float_input_is_scaled_and_rgb_is_accepted() -> None:
    _, _, _, raw = _decode(encode_png(np.array([[0.0, 0.5, 1.0, 2.0]])))
    assert list(raw) == [0, 0, 128, 255, 255]
    width, height, colour, raw = _decode(encode_png(np.zeros((2, 2, 3), np.uint8)))
    assert (width, height, colour, len(raw)) == (2, 2, 2, 2 * (1 + 6))


def test_other_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 4)))
