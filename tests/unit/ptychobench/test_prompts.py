from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptychobench.data import Sample
from ptychobench.labels import OPTION_LETTERS, Task, vocabulary
from ptychobench.prompts import (
    DETECTION_PROMPT,
    PROMPT_VERSION,
    RECOMMENDATION_TEMPLATE,
    Example,
    answer_regex,
    build_conversation,
    build_for_sample,
    format_answer,
    format_parameters,
    image_data_url,
    parse_recommendation_prompt,
    recommendation_prompt,
)

GOLDEN = Path(__file__).parent / "golden"


def test_detection_prompt_is_byte_exact() -> None:
    assert (GOLDEN / "detection_prompt.txt").read_text(encoding="utf-8") == DETECTION_PROMPT


def test_recommendation_template_is_byte_exact() -> None:
    golden = (GOLDEN / "recommendation_template.txt").read_text(encoding="utf-8")
    assert golden == RECOMMENDATION_TEMPLATE


def _rec_sample(**changes: object) -> Sample:
    fields: dict[str, object] = {
        "id": "s1",
        "sample_type": "Integrated circuit",
        "instrument": "APS-2IDE-XFM",
        "caption_obj": "Wiring with halos around the vias.",
        "artifacts": ("Line artifacts", "Halo artifacts"),
        "options": ("K", "G"),
        "parameters": format_parameters({"num_epochs": 100, "batch_size": 96}),
    }
    fields.update(changes)
    return Sample.model_validate(fields)


def test_recommendation_prompt_fills_the_template_and_reads_back() -> None:
    text = recommendation_prompt(_rec_sample())
    assert "Observed Artifacts: Halo artifacts, Line artifacts\n" in text
    assert "Current Reconstruction Parameters:\nnum_epochs: 100\nbatch_size: 96\n\n" in text
    assert parse_recommendation_prompt(text) == {
        "package": "pty-chi",
        "instrument": "APS-2IDE-XFM",
        "sample": "Integrated circuit",
        "beam": "X-ray",
        "caption_obj": "Wiring with halos around the vias.",
        "artifacts": "Halo artifacts, Line artifacts",
        "param_info": "num_epochs: 100\nbatch_size: 96",
    }


def test_recommendation_prompt_keeps_a_published_text_verbatim() -> None:
    assert recommendation_prompt(_rec_sample(prompt="as published")) == "as published"


@pytest.mark.parametrize(
    "text",
    [
        "something else",
        RECOMMENDATION_TEMPLATE.replace("Sample Type", "Sample Kind"),
        RECOMMENDATION_TEMPLATE.format(
            package="a\nb",
            instrument="",
            sample="",
            beam="",
            caption_obj="",
            artifacts="",
            param_info="",
        ),
    ],
)
def test_parse_recommendation_prompt_refuses_other_texts(text: str) -> None:
    with pytest.raises(ValueError, match="recommendation prompt"):
        parse_recommendation_prompt(text)


@pytest.mark.parametrize(
    ("labels", "task", "expected"),
    [
        (
            ["Line artifacts", "Halo artifacts"],
            Task.DETECTION,
            "<answer>[Halo artifacts, Line artifacts]</answer>",
        ),
        (["K", "G", "K"], Task.RECOMMENDATION, "<answer>G, K</answer>"),
        ([], Task.RECOMMENDATION, "<answer></answer>"),
    ],
)
def test_format_answer(labels: list[str], task: Task, expected: str) -> None:
    assert format_answer(labels, task) == expected


def test_image_data_url_detects_png_and_refuses_other_bytes(make_png: Callable[..., bytes]) -> None:
    png = make_png()
    url = image_data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
    with pytest.raises(ValueError, match="not PNG"):
        image_data_url(b"hello")


def test_detection_conversation_puts_an_image_in_every_user_turn(
    make_png: Callable[..., bytes],
) -> None:
    examples = [
        Example(f"e{i}", DETECTION_PROMPT, "<answer>[Blurring]</answer>", make_png(i))
        for i in range(3)
    ]
    conv = build_conversation("detection", DETECTION_PROMPT, examples, make_png(9))
    roles = [m["role"] for m in conv.messages]
    assert roles == ["user", "assistant"] * 3 + ["user"]
    for message in conv.messages[::2]:
        image_part, text_part = message["content"]
        assert image_part["type"] == "image_url"
        assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
        assert text_part == {"type": "text", "text": DETECTION_PROMPT}
    assert conv.messages[1]["content"] == "<answer>[Blurring]</answer>"
    assert conv.example_ids == ("e0", "e1", "e2")
    assert conv.k == 3
    assert conv.prompt_version == PROMPT_VERSION


def test_recommendation_conversation_is_text_only_and_refuses_images(
    make_png: Callable[..., bytes],
) -> None:
    conv = build_conversation("recommendation", "q", [Example("e", "x", "<answer>K</answer>")])
    assert conv.messages == [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "<answer>K</answer>"},
        {"role": "user", "content": "q"},
    ]
    with pytest.raises(ValueError, match="no image"):
        build_conversation("recommendation", "q", query_image=make_png())
    with pytest.raises(ValueError, match="need an image"):
        build_conversation("detection", "q", [Example("e", "x", "y")], make_png())


def test_prompt_hash_changes_with_content_and_is_stable() -> None:
    a = build_conversation("recommendation", "q1")
    assert a.prompt_hash == build_conversation("recommendation", "q1").prompt_hash
    assert a.prompt_hash != build_conversation("recommendation", "q2").prompt_hash
    assert len(a.prompt_hash) == 64


def test_nested_examples_share_the_prompt_prefix() -> None:
    examples = [
        Example(f"e{i}", f"text {i}", f"<answer>{OPTION_LETTERS[i]}</answer>") for i in range(7)
    ]
    three = build_conversation("recommendation", "q", examples[:3]).messages
    five = build_conversation("recommendation", "q", examples[:5]).messages
    assert five[:6] == three[:6]


def test_build_for_sample_reads_images_from_disk(
    tmp_path: Path, make_png: Callable[..., bytes]
) -> None:
    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        path.write_bytes(make_png(i))
        paths.append(path)
    query = Sample(id="q", image=paths[0], artifacts=("Blurring",))
    example = Sample(id="e", image=paths[1], artifacts=("Phase ramp", "Grid artifacts"))
    conv = build_for_sample("detection", query, [example])
    assert conv.messages[1]["content"] == "<answer>[Grid artifacts, Phase ramp]</answer>"
    assert conv.messages[2]["content"][0]["image_url"]["url"] == image_data_url(paths[0])
    with pytest.raises(ValueError, match="no image"):
        build_for_sample("detection", Sample(id="x"))
    rec = build_for_sample("recommendation", _rec_sample(), [_rec_sample(id="s2")])
    assert rec.messages[1]["content"] == "<answer>G, K</answer>"


@given(st.sampled_from(list(Task)), st.data())
def test_answer_regex_admits_every_formatted_answer_up_to_the_bound(
    task: Task, data: st.DataObject
) -> None:
    labels = data.draw(
        st.lists(st.sampled_from(vocabulary(task)), min_size=1, max_size=5, unique=True)
    )
    assert re.fullmatch(answer_regex(task), format_answer(labels, task))


@pytest.mark.parametrize(
    ("task", "answer"),
    [
        (Task.RECOMMENDATION, "<answer>Y</answer>"),  # not a letter of the options
        (Task.RECOMMENDATION, "<answer>A, B, C, D, E, F</answer>"),  # over the bound
        (Task.RECOMMENDATION, "<answer>A,B</answer>"),
        (Task.RECOMMENDATION, "<answer></answer>"),
        (Task.DETECTION, "<answer>[Halo]</answer>"),
        (Task.DETECTION, "<answer>Halo artifacts</answer>"),  # brackets required
        (Task.DETECTION, "<answer>[Halo artifacts, Grid artifacts, Blurring]</answer> more"),
    ],
)
def test_answer_regex_refuses_other_answers(task: Task, answer: str) -> None:
    assert re.fullmatch(answer_regex(task), answer) is None


def test_answer_regex_bound_is_checked() -> None:
    assert re.fullmatch(answer_regex("recommendation", 1), "<answer>A</answer>")
    assert not re.fullmatch(answer_regex("recommendation", 1), "<answer>A, B</answer>")
    with pytest.raises(ValueError, match="max_labels"):
        answer_regex("recommendation", 0)
