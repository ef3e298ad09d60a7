"""How corpus and shifted samples are shown: rendered images, worded parameter lists."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptychobench.images import encode_png
from ptychobench.prompts import format_parameters, parse_parameters
from ptychobench.sim.generate import SimSettings, _sample
from ptychobench.sim.render import RENDERINGS, Rendering, draw_rendering, phase_display, render
from ptychobench.sim.wording import STYLES, draw_style, write_parameters

PARAMETERS = {
    "engine": "LSQML",
    "iterations": "40",
    "batch size": "25",
    "position correction": "off",
    "probe modes": "2",
    "regularization": "total variation, weight 0.10",
}


def _ramp(size: int = 64) -> np.ndarray:
    return np.tile(np.linspace(0, 1, size), (size, 1))


def test_the_benchmark_rendering_and_listing_are_unchanged() -> None:
    assert draw_rendering("none", 0, 3) == Rendering()
    assert draw_style("none", 0, 3) == (None, False)
    assert write_parameters(PARAMETERS, None, False, 0, 0) == format_parameters(PARAMETERS)


def test_renderings_are_deterministic_and_the_shifted_ones_unseen_in_the_corpus() -> None:
    corpus = [draw_rendering("corpus", 1000, i) for i in range(300)]
    shifted = [draw_rendering("shifted", 2000, i) for i in range(300)]
    assert corpus[5] == draw_rendering("corpus", 1000, 5)
    assert {r.file_format for r in corpus} == {"png", "tiff", "jpeg"}
    assert {r.bit_depth for r in corpus} == {8, 16}
    assert any(r.wrapped for r in corpus)
    corpus_maps = {r.colormap for r in corpus} - {None}
    shifted_maps = {r.colormap for r in shifted} - {None}
    assert corpus_maps
    assert shifted_maps
    assert not corpus_maps & shifted_maps
    assert not {r.size for r in shifted} & set(RENDERINGS["corpus"].sizes)


@pytest.mark.parametrize("index", range(16))
def test_a_rendered_image_decodes_at_its_size_and_mode(index: int) -> None:
    rendering = draw_rendering("corpus", 7, index)
    data = render(_ramp(), (-2.0, 2.0), rendering)
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.size == (rendering.size, rendering.size)
        assert (
            picture.format == {"png": "PNG", "tiff": "TIFF", "jpeg": "JPEG"}[rendering.file_format]
        )
        expected = "RGB" if rendering.colormap else ("L" if rendering.bit_depth == 8 else "I;16")
        assert picture.mode == expected


def test_wrapping_folds_a_phase_range_wider_than_two_pi() -> None:
    image = _ramp()
    unwrapped = phase_display(image, (-5.0, 5.0), Rendering())
    wrapped = phase_display(image, (-5.0, 5.0), Rendering(wrapped=True))
    assert np.all(np.diff(unwrapped[0]) >= 0)
    assert np.sum(np.diff(wrapped[0]) < -0.5) == 2  # −5…5 rad folds at −π and at π
    turned = phase_display(image, (0.0, 1.0), Rendering(quarter_turns=1, flip=True))
    assert turned.shape == image.shape
    assert not np.allclose(turned, image)


@pytest.mark.parametrize("variation", ["corpus", "shifted"])
def test_every_style_keeps_every_value_and_parses_back(variation: str) -> None:
    for style in STYLES[variation]:
        for shuffle in (False, True):
            text = write_parameters(PARAMETERS, style, shuffle, 1, 2)
            parsed = parse_parameters(text)
            assert len(parsed) == len(PARAMETERS)
            assert "total variation, weight 0.10" in parsed.values()
            assert any(v.startswith("40") for v in parsed.values())
    corpus_names = {s.name for s in STYLES["corpus"]}
    assert not corpus_names & {s.name for s in STYLES["shifted"]}


def test_parse_parameters_reads_bullets_and_equals_signs() -> None:
    text = "- Batch size: 25\n• nIterations: 40\nn_iter = 12\nno separator here"
    assert parse_parameters(text) == {"Batch size": "25", "nIterations": "40", "n_iter": "12"}
    assert parse_parameters(format_parameters(PARAMETERS)) == PARAMETERS


def test_a_corpus_sample_in_the_release_is_rendered_and_worded(tmp_path: Path) -> None:
    (tmp_path / "work" / "phase").mkdir(parents=True)
    (tmp_path / "work" / "phase" / "abc-object_ph_Niter40.png").write_bytes(encode_png(_ramp(128)))
    record = {
        "id": "abc",
        "index": 4,
        "sample_type": "Siemens star",
        "instrument": "2-ID-D",
        "artifacts": ["Blurring"],
        "parameters": PARAMETERS,
        "image": "abc-object_ph_Niter40.png",
        "phase_range": [-1.0, 1.5],
    }
    settings = SimSettings(n=20, seed=1000, variation="corpus")
    sample = _sample(record, tmp_path, settings)
    rendering = draw_rendering("corpus", 1000, 4)
    assert sample.image == tmp_path / "images" / f"abc-object_ph_Niter40{rendering.extension}"
    assert sample.image.read_bytes() == render(_ramp(128), (-1.0, 1.5), rendering)
    style, shuffle = draw_style("corpus", 1000, 4)
    assert sample.parameters == write_parameters(PARAMETERS, style, shuffle, 1000, 4)
    assert _sample(record, tmp_path, settings) == sample  # a second export is the same
