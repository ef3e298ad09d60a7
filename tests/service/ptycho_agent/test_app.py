"""The ptycho_agent app in-process: bad input and backend failures (the backend is a
scripted transport here; the real engine is in tests/integration/test_agent_service.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ptycho_agent.app import create_app
from services.ptycho_agent.settings import AgentBackendSettings, AgentSettings

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
SAMPLE = {
    "instrument": "APS-2IDE-XFM",
    "sample_type": "Liquid-metal particles",
    "description": "some ringing around the edges",
    "artifacts": ["Halo artifacts"],
    "parameters": {"engine": "LSQML", "iterations": "9"},
}


def _app(handler: Callable[[httpx.Request], httpx.Response], **backend: Any) -> httpx.AsyncClient:
    settings = AgentSettings(
        examples_dataset=str(ROOT / "data" / "ptychobench-sim"),
        backend=AgentBackendSettings(base_url="http://engine", backoff_s=0, **backend),
    )
    app = create_app(settings, transport=httpx.MockTransport(handler))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://agent")


def _answer(text: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        handler.bodies.append(body)  # type: ignore[attr-defined]
        reply = {
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 480, "completion_tokens": 6},
        }
        return httpx.Response(200, json=reply)

    handler.bodies = []  # type: ignore[attr-defined]
    return handler


async def test_a_recommendation_carries_letters_texts_changes_and_provenance() -> None:
    handler = _answer("<answer>G, K</answer>")
    async with _app(handler) as client:
        response = await client.post(
            "/v1/recommend", json={"sample": SAMPLE, "k": 3, "sample_id": "671e15ce"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["letters"] == ["G", "K"]
    assert body["recommendations"][0]["text"] == "Enable position correction"
    assert body["recommendations"][1]["changes"][0]["path"] == "reconstructor_options.num_epochs"
    assert body["adapter"] == "smollm2-135m-agent"
    assert len(body["example_ids"]) == 3
    assert "671e15ce" not in body["example_ids"]  # never its own example
    sent = handler.bodies[0]  # type: ignore[attr-defined]
    assert sent["model"] == "smollm2-135m-agent"
    assert sent["structured_outputs"]["regex"].startswith("<answer>")
    assert len(sent["messages"]) == 7  # 3 example turns and the query
    assert "Observed Artifacts: Halo artifacts" in sent["messages"][-1]["content"]
    assert "iterations: 9" in sent["messages"][-1]["content"]


async def test_an_unparseable_answer_is_reported_not_hidden() -> None:
    async with _app(_answer("<answer>increase the magic</answer>")) as client:
        body = (await client.post("/v1/recommend", json={"sample": SAMPLE})).json()
        metrics = (await client.get("/metrics")).text
    assert body["letters"] == []
    assert body["unmapped"] == ["increase the magic"]
    assert 'ptycho_agent_parse_failures_total{task="recommendation"} 1.0' in metrics


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"sample": {**SAMPLE, "artifacts": ["Ghosts"]}}, "unknown artifact label"),
        ({"sample": {**SAMPLE, "colour": "red"}}, "sample.colour: Extra inputs"),
        ({"sample": SAMPLE, "k": 9}, "k = 9 is above this service's limit 7"),
        ({"sample": SAMPLE, "strategy": "best"}, "strategy: Input should be"),
        ({"sample": SAMPLE, "adapter": "../etc"}, "adapter: String should match"),
        ({"sample": {"sample_type": "x"}}, "sample.instrument: Field required"),
    ],
)
async def test_bad_input_is_a_422_saying_what_is_wrong(
    payload: dict[str, Any], detail: str
) -> None:
    async with _app(_answer("<answer>K</answer>")) as client:
        response = await client.post("/v1/recommend", json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


async def test_not_json_is_a_clear_error() -> None:
    async with _app(_answer("<answer>K</answer>")) as client:
        response = await client.post(
            "/v1/recommend", content=b"not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert "JSON decode error" in response.json()["detail"]


async def test_a_down_backend_is_a_503_after_retries_and_opens_the_circuit() -> None:
    calls = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")

    async with _app(down, max_retries=1, circuit_failures=2, circuit_reset_s=60) as client:
        first = await client.post("/v1/recommend", json={"sample": SAMPLE})
        second = await client.post("/v1/recommend", json={"sample": SAMPLE})
        ready = await client.get("/readyz")
        metrics = (await client.get("/metrics")).text
    assert first.status_code == 503
    assert "did not answer after 2 attempts: ConnectError" in first.json()["detail"]
    assert second.status_code == 503
    assert "circuit is open" in second.json()["detail"]
    assert "last error: ConnectError: connection refused" in second.json()["detail"]
    assert len(calls) == 2 + 1  # two attempts, then fast failure; the /health probe
    assert ready.status_code == 503
    assert "backend" in ready.json()["detail"]
    assert 'ptycho_agent_backend_circuit_state{state="open"} 1.0' in metrics
    assert 'ptycho_agent_backend_retries_total{model="smollm2-135m-agent"} 1.0' in metrics


async def test_an_unknown_adapter_is_a_404_with_the_engines_words() -> None:
    def unknown(request: httpx.Request) -> httpx.Response:
        message = "The model `nope` does not exist."
        return httpx.Response(404, json={"error": {"message": message, "code": 404}})

    async with _app(unknown) as client:
        response = await client.post("/v1/recommend", json={"sample": SAMPLE, "adapter": "nope"})
    assert response.status_code == 404
    assert "The model `nope` does not exist." in response.json()["detail"]


def test_settings_from_the_environment_keep_the_agent_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_BACKEND__BASE_URL", "http://gpu-host:8000")
    monkeypatch.setenv("AGENT_MAX_K", "5")
    settings = AgentSettings()
    assert settings.backend.base_url == "http://gpu-host:8000"
    assert settings.backend.model == "smollm2-135m-agent"
    assert settings.max_k == 5


async def test_a_down_retriever_is_a_503_naming_it(free_tcp_port: Callable[[], int]) -> None:
    from services.common.settings import UpstreamSettings

    nowhere = UpstreamSettings(base_url=f"http://127.0.0.1:{free_tcp_port()}", backoff_s=0)
    settings = AgentSettings(
        retriever=nowhere,
        backend=AgentBackendSettings(base_url="http://engine", backoff_s=0),
    )
    app = create_app(settings, transport=httpx.MockTransport(_answer("<answer>K</answer>")))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agent"
    ) as client:
        with_examples = await client.post("/v1/recommend", json={"sample": SAMPLE, "k": 1})
        without = await client.post("/v1/recommend", json={"sample": SAMPLE, "k": 0})
        ready = await client.get("/readyz")
    assert with_examples.status_code == 503
    assert "the retriever at http://127.0.0.1:" in with_examples.json()["detail"]
    assert "did not answer after 3 attempts" in with_examples.json()["detail"]
    assert without.status_code == 200  # zero-shot needs no examples
    assert ready.status_code == 503
    assert ready.json()["checks"]["examples"] is False
