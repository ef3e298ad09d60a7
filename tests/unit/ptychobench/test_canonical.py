"""The canonical picture: a colormapped phase is read back to its scalar, grey stays as it
is, and colour no map of the bank explains falls back to luminance."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from ptychobench.canonical import BANK, MAX_RESIDUAL, canonical
from ptychobench.sim.render import RENDERINGS, Rendering, render

CYCLIC = {"twilight", "hsv"}
"""Their ends meet: a scalar near 0 and one near 1 share a colour."""
BOUND = 0.99
CYCLIC_BOUND = 0.97
CORPUS_MAPS = {name for name, _ in RENDERINGS["corpus"].colormaps if name is not None}
SHIFTED_MAPS = {name for name, _ in RENDERINGS["shifted"].colormaps if name is not None}


def _field(n: int = 128) -> npt.NDArray[np.float64]:
    """A smooth bump and ramp, a disc with a sharp edge, and ripples, on [0, 1]."""
    y, x = np.mgrid[0:n, 0:n] / (n - 1)
    field = 0.35 * np.exp(-((x - 0.3) ** 2 + (y - 0.6) ** 2) / 0.05) + 0.3 * x
    field += 0.3 * (((x - 0.65) ** 2 + (y - 0.35) ** 2) < 0.04) + 0.1 * np.sin(12 * y)
    return (field - field.min()) / (field.max() - field.min())


FIELD = _field()


def _decoded(rendering: Rendering) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(render(FIELD, (0.0, 1.0), rendering))))


GREY_TRUTH = _decoded(Rendering()) / 255.0


def _r(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _luminance(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    return np.asarray(rgb[..., :3] / 255.0 @ np.array([0.299, 0.587, 0.114]))


def test_the_bank_holds_the_shifted_sets_maps_and_more_than_the_corpus() -> None:
    assert set(BANK) >= SHIFTED_MAPS
    assert set(BANK) >= CORPUS_MAPS
    assert len(set(BANK) - CORPUS_MAPS - SHIFTED_MAPS) >= 2
    assert len(set(BANK)) == len(BANK)


@pytest.mark.parametrize("file_format", ["png", "jpeg"])
@pytest.mark.parametrize("name", BANK)
def test_every_map_of_the_bank_is_read_back_to_the_phase(name: str, file_format: str) -> None:
    found = canonical(_decoded(Rendering(colormap=name, file_format=file_format)))
    r = _r(found.pixels, GREY_TRUTH)
    if name == "Greys":  # a grey map that runs from white to black: read as 1 - v
        assert found.method == "grey"
        assert r < -BOUND
        return
    assert r > (CYCLIC_BOUND if name in CYCLIC else BOUND), (found.colormap, r)
    if name == "gray":
        assert found.method == "grey"
    else:
        assert (found.method, found.colormap) == ("colormap", name)
        assert found.residual is not None
        assert found.residual < MAX_RESIDUAL
    assert found.pixels.shape == GREY_TRUTH.shape
    assert found.pixels.min() >= 0.0
    assert found.pixels.max() <= 1.0


def test_a_reversed_map_reads_as_its_forward_map_backwards() -> None:
    forward = canonical(_decoded(Rendering(colormap="turbo")))
    backward = canonical(_decoded(Rendering(colormap="turbo", invert=True)))
    assert backward.colormap == "turbo"
    assert _r(backward.pixels, 1.0 - forward.pixels) > BOUND


@pytest.mark.parametrize("name", ["brg", "tab20"])
def test_a_map_like_none_of_the_bank_falls_back_to_luminance(name: str) -> None:
    image = _decoded(Rendering(colormap=name))
    found = canonical(image)
    assert found.method == "luminance"
    assert found.colormap is None
    assert found.residual is not None
    assert found.residual > MAX_RESIDUAL
    np.testing.assert_allclose(found.pixels, _luminance(image))


def test_a_photograph_like_picture_falls_back_to_luminance() -> None:
    """Colour that varies in two directions (hue across, brightness down) is no curve."""
    y, x = np.mgrid[0:96, 0:96] / 95.0
    hsv = np.stack([x, np.full_like(x, 0.8), 0.3 + 0.7 * y], axis=-1)
    rgb = np.asarray(Image.fromarray(np.uint8(hsv * 255), "HSV").convert("RGB"))
    found = canonical(rgb)
    assert found.method == "luminance"
    np.testing.assert_allclose(found.pixels, _luminance(rgb))


def test_a_picture_of_a_few_colours_is_read_as_luminance() -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:16] = (255, 0, 0)
    rgb[16:] = (0, 0, 255)
    found = canonical(rgb)
    assert (found.method, found.colormap, found.residual) == ("luminance", None, None)
    np.testing.assert_allclose(found.pixels, _luminance(rgb))


@pytest.mark.parametrize(
    "image",
    [
        GREY_TRUTH,
        (GREY_TRUTH * 255).astype(np.uint8),
        (GREY_TRUTH * 65535).astype(np.uint16),
    ],
    ids=["float", "uint8", "uint16"],
)
def test_grey_passes_through_unchanged(image: npt.NDArray[np.generic]) -> None:
    found = canonical(image)
    assert (found.method, found.colormap, found.residual) == ("grey", None, None)
    np.testing.assert_allclose(found.pixels, GREY_TRUTH, atol=1e-4)


def test_rgb_with_equal_channels_is_grey() -> None:
    grey = (GREY_TRUTH * 255).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    found = canonical(rgba)
    assert found.method == "grey"
    np.testing.assert_allclose(found.pixels, grey / 255.0, atol=1e-12)


def test_a_grey_jpeg_saved_as_colour_is_grey() -> None:
    found = canonical(_decoded(Rendering(colormap="gray", file_format="jpeg")))
    assert found.method == "grey"
    assert _r(found.pixels, GREY_TRUTH) > BOUND


def test_an_array_that_is_no_image_is_refused() -> None:
    with pytest.raises(ValueError, match="expected an"):
        canonical(np.zeros((8, 8, 2)))
