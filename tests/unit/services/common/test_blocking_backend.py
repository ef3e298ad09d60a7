"""BlockingBackend: the one engine client, for synchronous code (training's evaluation,
the engine manager, the benchmark scripts)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.common.backend import BlockingBackend
from services.common.errors import BackendRejected
from services.common.settings import BackendSettings
from services.common.upstream import error_message

REPLY = {
    "choices": [{"message": {"content": "<answer>K</answer>"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}


def _engine(handler: httpx.MockTransport) -> BlockingBackend:
    settings = BackendSettings(base_url="http://engine", max_retries=0)
    return BlockingBackend(settings, transport=handler)


def test_a_prepared_body_goes_as_it_is_from_several_threads() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=REPLY)

    body = {"model": "base", "messages": [], "max_tokens": 1, "ignore_eos": True}
    with _engine(httpx.MockTransport(answer)) as engine, ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: engine.completion(body), range(8)))
        completion = engine.chat([{"role": "user", "content": "hi"}], model="agent")
    assert replies == [REPLY] * 8
    assert seen[0] == body
    assert (completion.text, completion.model, completion.prompt_tokens) == (
        "<answer>K</answer>",
        "agent",
        5,
    )


def test_the_engines_refusal_is_the_services_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"object": "error", "message": "already loaded"})

    with (
        _engine(httpx.MockTransport(refuse)) as engine,
        pytest.raises(BackendRejected, match="refused the request: already loaded"),
    ):
        engine.load_adapter("a", "/adapters/a")


def test_error_bodies_are_read_as_problem_json_too() -> None:
    assert error_message('{"title": "x", "detail": "no such adapter"}') == "no such adapter"


def test_models_health_and_metrics_come_from_the_same_client() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "base"}, {"id": "agent"}]})
        if request.url.path == "/metrics":
            return httpx.Response(200, text="vllm:prefix_cache_hits_total{} 3.0\n")
        return httpx.Response(200)

    with _engine(httpx.MockTransport(answer)) as engine:
        assert engine.models() == ["base", "agent"]
        assert engine.ready()
        assert "prefix_cache_hits" in engine.metrics()
