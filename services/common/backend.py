"""The one client every service uses to reach a model: vLLM's OpenAI-compatible API.

Built on :class:`services.common.upstream.Upstream` (pooling, timeouts, retries, circuit
breaker), with an optional LRU response cache keyed on what changes the answer (model,
messages, sampling settings, answer constraint) and nothing else. It is the only code in
the project that speaks to vLLM: the services use :class:`BackendClient`; synchronous code
(training's evaluation, the engine manager, the benchmark scripts) uses
:class:`BlockingBackend`, the same client run on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from services.common.settings import BackendSettings
from services.common.upstream import BackendObserver, CircuitBreaker, Upstream

T = TypeVar("T")


@dataclass(frozen=True)
class Completion:
    """One chat answer and what it cost."""

    text: str
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    cached: bool = False


def cache_key(body: dict[str, Any]) -> str:
    """Hash of what changes the answer: model, messages, sampling, constraint."""
    wanted = {
        key: body.get(key)
        for key in ("model", "messages", "temperature", "top_p", "max_tokens", "seed")
    }
    wanted["structured_outputs"] = body.get("structured_outputs")
    canonical = json.dumps(wanted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class BackendClient:
    """Chat completions against one OpenAI-compatible base URL."""

    def __init__(
        self,
        settings: BackendSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: BackendObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.upstream = Upstream(
            settings, "the model backend", transport=transport, observer=observer, sleep=sleep
        )
        self._cache: OrderedDict[str, Completion] = OrderedDict()

    @property
    def circuit(self) -> CircuitBreaker:
        return self.upstream.circuit

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int | None = None,
        regex: str | None = None,
        request_id: str | None = None,
    ) -> Completion:
        """One chat completion (greedy by default); cached when deterministic."""
        body: dict[str, Any] = {
            "model": model or self.settings.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            body["seed"] = seed
        if regex is not None:
            body["structured_outputs"] = {"regex": regex}
        deterministic = temperature == 0 or seed is not None
        key = cache_key(body) if self.settings.cache_size and deterministic else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            hit = self._cache[key]
            return replace(hit, cached=True, latency_s=0.0)
        started = time.perf_counter()
        reply, attempts = await self._post(body, request_id)
        latency = time.perf_counter() - started
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        completion = Completion(
            text=str(choice["message"].get("content") or ""),
            model=body["model"],
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            attempts=attempts,
        )
        if key is not None:
            self._cache[key] = completion
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)
        return completion

    async def completion(
        self, body: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """A request body sent as it is (vLLM's own sampling fields too: ``min_tokens``,
        ``ignore_eos``), its reply as it came; never cached."""
        return (await self._post(body, request_id))[0]

    async def _post(
        self, body: dict[str, Any], request_id: str | None
    ) -> tuple[dict[str, Any], int]:
        response, attempts = await self.upstream.request(
            "POST", "/v1/chat/completions", body, request_id=request_id, label=body["model"]
        )
        reply: dict[str, Any] = response.json()
        return reply, attempts

    async def load_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter into the running engine under ``name`` (vLLM's runtime
        LoRA API)."""
        body = {"lora_name": name, "lora_path": path}
        await self.upstream.request("POST", "/v1/load_lora_adapter", body, label=name)

    async def unload_adapter(self, name: str) -> None:
        """Remove a LoRA adapter from the running engine."""
        body = {"lora_name": name}
        await self.upstream.request("POST", "/v1/unload_lora_adapter", body, label=name)

    async def models(self) -> list[str]:
        """The model and adapter names the backend serves."""
        response, _ = await self.upstream.request("GET", "/v1/models")
        return [entry["id"] for entry in response.json()["data"]]

    async def metrics(self) -> str:
        """The engine's Prometheus metrics, as text."""
        response, _ = await self.upstream.request("GET", "/metrics")
        return response.text

    async def ready(self) -> bool:
        """Whether the backend answers its health check now (no retries)."""
        return await self.upstream.healthy("/health")


class BlockingBackend(contextlib.AbstractContextManager["BlockingBackend"]):
    """:class:`BackendClient` for synchronous code, on an event loop in a thread of its
    own (so several threads share one pooled client): ``with BlockingBackend(settings)
    as engine: engine.chat(...)``. Raises what :class:`BackendClient` raises."""

    def __init__(
        self, settings: BackendSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="backend-client", daemon=True
        )
        self._thread.start()
        self.client = self._run(self._make(settings, transport))

    @staticmethod
    async def _make(
        settings: BackendSettings, transport: httpx.AsyncBaseTransport | None
    ) -> BackendClient:
        return BackendClient(settings, transport=transport)

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._run(self.client.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def chat(self, messages: list[dict[str, Any]], **options: Any) -> Completion:
        """As :meth:`BackendClient.chat`."""
        return self._run(self.client.chat(messages, **options))

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`BackendClient.completion`."""
        return self._run(self.client.completion(body))

    def load_adapter(self, name: str, path: str) -> None:
        """As :meth:`BackendClient.load_adapter`."""
        self._run(self.client.load_adapter(name, path))

    def unload_adapter(self, name: str) -> None:
        """As :meth:`BackendClient.unload_adapter`."""
        self._run(self.client.unload_adapter(name))

    def models(self) -> list[str]:
        """As :meth:`BackendClient.models`."""
        return self._run(self.client.models())

    def metrics(self) -> str:
        """As :meth:`BackendClient.metrics`."""
        return self._run(self.client.metrics())

    def ready(self) -> bool:
        """As :meth:`BackendClient.ready`."""
        return self._run(self.client.ready())
