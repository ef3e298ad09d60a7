"""Image intake: every accepted format, and every way an upload can be wrong."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from services.common.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from services.diagnosis.images import ImageLimits, decode_image

ROOT = Path(__file__).resolve().parents[4]
DATASET_IMAGE = next((ROOT / "data" / "ptychobench-sim" / "images").glob("*.png"))


def _pil(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(out, format=fmt)
    return out.getvalue()


def _tiff(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, array)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def _ramp(dtype: type, high: float, shape: tuple[int, int] = (32, 48)) -> np.ndarray:
    return np.linspace(0, high, shape[0] * shape[1]).reshape(shape).astype(dtype)


def test_a_dataset_png_passes_through_unchanged() -> None:
    data = DATASET_IMAGE.read_bytes()
    image = decode_image(data)
    assert image.png == data
    assert (image.format, image.mode) == ("png", "grey")
    expected = np.asarray(Image.open(DATASET_IMAGE), dtype=np.float64) / 255
    np.testing.assert_array_equal(image.pixels, expected)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (_tiff(_ramp(np.uint16, 4000)), "tiff"),  # a 16-bit detector image using 12 bits
        (_pil(_ramp(np.uint16, 4000), "I;16"), "png"),
        (_tiff(_ramp(np.float32, 3.1)), "tiff"),
        (_npy(_ramp(np.float64, -2.0)), "npy"),
    ],
)
def test_deep_and_float_images_are_stretched_to_the_unit_range(data: bytes, fmt: str) -> None:
    image = decode_image(data)
    assert image.format == fmt
    assert image.pixels.shape == (32, 48)
    assert image.pixels.min() == 0
    assert image.pixels.max() == 1
    assert image.png.startswith(b"\x89PNG")
    reread = np.asarray(Image.open(io.BytesIO(image.png)))
    assert reread.shape == (32, 48)


def test_a_complex_object_gives_its_phase() -> None:
    _y, x = np.mgrid[0:32, 0:32]
    phase = 0.1 * x
    image = decode_image(_npy(np.exp(1j * phase).astype(np.complex64)))
    assert image.mode == "complex"
    assert np.all(np.diff(image.pixels, axis=1) >= 0)  # the ramp survives, left to right
    assert image.pixels[:, 0].mean() < 0.05
    assert image.pixels[:, -1].mean() > 0.95


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_images_keep_colour_for_the_vlm_and_give_grey_pixels(channels: int) -> None:
    rgb = np.zeros((20, 20, channels), np.uint8)
    rgb[..., 0] = 255
    if channels == 4:
        rgb[..., 3] = 255
    image = decode_image(_pil(rgb))
    assert image.mode == "rgb"
    np.testing.assert_allclose(image.pixels, 0.299)
    assert np.asarray(Image.open(io.BytesIO(image.png))).shape == (20, 20, 3)


def test_a_jpeg_is_read() -> None:
    image = decode_image(_pil(_ramp(np.uint8, 255), fmt="JPEG"))
    assert image.format == "jpeg"
    assert image.png.startswith(b"\x89PNG")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _npy_header_only(shape: tuple[int, ...]) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "limits", "error", "message"),
    [
        (b"", ImageLimits(), InvalidInput, "empty"),
        (b"GIF89a" + b"\x00" * 20, ImageLimits(), UnsupportedMediaType, "not PNG, JPEG, TIFF"),
        (b"x" * 101, ImageLimits(max_bytes=100), PayloadTooLarge, "101 bytes"),
        (_png_header_only(100_000, 100_000), ImageLimits(), PayloadTooLarge, "decompression"),
        (_npy_header_only((200_000, 200_000)), ImageLimits(), PayloadTooLarge, "pixels"),
        (
            _tiff(_ramp(np.uint16, 10, (40, 40))),
            ImageLimits(max_pixels=1000),
            PayloadTooLarge,
            "1,600",
        ),
        (DATASET_IMAGE.read_bytes()[:200], ImageLimits(), InvalidInput, "could not be decoded"),
        (b"II*\x00" + b"\x00" * 40, ImageLimits(), InvalidInput, "the TIFF has no pages"),
        (_npy(np.zeros((5, 32, 32))), ImageLimits(), InvalidInput, "expected a 2-D image"),
        (_npy(np.zeros((8, 8))), ImageLimits(), InvalidInput, "at least 16 x 16"),
        (_npy(np.full((20, 20), np.nan)), ImageLimits(), InvalidInput, "NaN"),
        (_npy(np.array(["a"] * 400).reshape(20, 20)), ImageLimits(), InvalidInput, "not numeric"),
        (_npy(np.empty((20, 20), dtype=object)), ImageLimits(), InvalidInput, "Python objects"),
        (_npy(np.zeros(400)), ImageLimits(), InvalidInput, "not an image"),
    ],
)
def test_bad_uploads_are_refused_clearly(
    data: bytes, limits: ImageLimits, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        decode_image(data, limits)


# ---------------------------------------------------------------- bombs: declared sizes

SMALL = ImageLimits(max_pixels=1000)
"""1,000 pixels; with 4 samples a pixel, 4,000 values over every axis."""


def _tiff_with(array: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, array, **options)  # type: ignore[arg-type]
    return out.getvalue()


def _two_pages(first: np.ndarray, second: np.ndarray) -> bytes:
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as writer:
        writer.write(first)
        writer.write(second)
    return out.getvalue()


def _npy_declaring(shape: tuple[int, ...], descr: object = "<f8", data: bytes = b"") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue() + data


def _jpeg_header_declaring(width: int, height: int) -> bytes:
    data = bytearray(_pil(_ramp(np.uint8, 255, (16, 16)), fmt="JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


GREY = {"photometric": "minisblack"}


@pytest.mark.parametrize(
    ("data", "limits"),
    [
        # contiguous grey + alpha: every sample of every pixel counts (H x W x 2)
        (_tiff_with(np.zeros((40, 40, 2), np.uint8), planarconfig="contig", **GREY), SMALL),
        # planar (S, H, W): the planes count, not only H x W
        (_tiff_with(np.zeros((40, 16, 16), np.uint8), planarconfig="separate", **GREY), SMALL),
        # a volume (image depth): every slice counts
        (_tiff_with(np.zeros((16, 16, 16), np.uint8), tile=(16, 16, 16), volumetric=True), SMALL),
        # a small image in one huge (zlib) tile: the tile is decoded whole
        (_tiff_with(np.zeros((16, 32), np.uint8), tile=(64, 64), compression="zlib"), SMALL),
        # the first page of a multi-page TIFF is the image
        (_two_pages(np.zeros((40, 40), np.uint8), np.zeros((16, 16), np.uint8)), SMALL),
        # .npy: every axis, in any order, and absurd shapes (numpy's MemoryError before)
        (_npy_declaring((16, 16, 10**12)), ImageLimits()),
        (_npy_declaring((10**12, 16, 16)), ImageLimits()),
        (_npy(np.zeros((3, 40, 40))), SMALL),
        (_npy(np.zeros((40, 1, 40, 3))), SMALL),
        # PNG and JPEG by their headers
        (_png_header_only(40, 40), SMALL),
        (_jpeg_header_declaring(60_000, 60_000), ImageLimits()),
    ],
)
def test_every_declared_axis_counts_before_a_byte_is_decoded(
    data: bytes, limits: ImageLimits
) -> None:
    with pytest.raises(PayloadTooLarge, match="refused before decoding"):
        decode_image(data, limits)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # the header promises more bytes than the file holds: refused, nothing allocated
        (_npy_declaring((4096, 4096), data=b"\x00" * 64), "134,217,728 bytes"),
        # no pixels, or fewer than none (numpy's header reader lets negative sizes through)
        (_npy_declaring((0, 20)), "holds no pixels"),
        (_npy_declaring((-1, 20)), "holds no pixels"),
        # a sub-array dtype hides axes from the shape
        (_npy_declaring((16, 16), ("<f8", (1000000,))), "not numeric"),
        # a layout no decoder here reads is refused from the header, not after decoding
        (_tiff_with(np.zeros((16, 16, 2), np.uint8), planarconfig="contig", **GREY), "got shape"),
    ],
)
def test_headers_that_cannot_be_an_image_are_refused_before_decoding(
    data: bytes, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_image(data)


def test_a_multi_page_tiff_is_read_by_its_first_page_only() -> None:
    image = decode_image(_two_pages(_ramp(np.uint16, 9, (20, 24)), np.zeros((64, 64), np.uint8)))
    assert image.pixels.shape == (20, 24)


def test_a_planar_rgb_tiff_is_read_as_colour() -> None:
    planar = np.zeros((3, 20, 20), np.uint8)
    planar[0] = 255
    image = decode_image(_tiff_with(planar, photometric="rgb", planarconfig="separate"))
    assert image.mode == "rgb"
    np.testing.assert_allclose(image.pixels, 0.299)


def test_an_npy_is_read_in_fortran_order_too() -> None:
    array = np.asfortranarray(_ramp(np.float32, 5.0))
    image = decode_image(_npy(array))
    np.testing.assert_allclose(image.pixels, decode_image(_npy(np.ascontiguousarray(array))).pixels)


def test_a_colormapped_upload_is_read_back_through_its_map() -> None:
    """What the classifier reads is the phase, not the colormap's luminance: jet's is not
    monotonic. The VLM still gets the colour PNG as it came."""
    from ptychobench.canonical import canonical
    from ptychobench.sim.render import Rendering, render

    y, x = np.mgrid[0:64, 0:64] / 63.0
    phase = 0.6 * x + 0.4 * (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.06)
    data = render(phase, (0.0, 1.0), Rendering(colormap="jet", size=64))
    image = decode_image(data)
    rgb = np.asarray(Image.open(io.BytesIO(data)))
    assert (image.mode, image.colormap) == ("rgb", "jet")
    np.testing.assert_array_equal(image.pixels, canonical(rgb).pixels)
    grey = np.asarray(Image.open(io.BytesIO(render(phase, (0.0, 1.0), Rendering(size=64)))))
    assert np.corrcoef(image.pixels.ravel(), grey.ravel())[0, 1] > 0.99
    assert image.png == data


def test_a_grey_upload_names_no_colormap() -> None:
    assert decode_image(DATASET_IMAGE.read_bytes()).colormap is None
