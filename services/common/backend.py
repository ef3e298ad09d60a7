"""The one client every service uses to reach a model: vLLM's OpenAI-compatible API.

Built on :class:`services.common.upstream.Upstream` (pooling, timeouts, retries, circuit
breaker), with an optional LRU response cache keyed on what changes the answer (model,
messages, sampling settings, answer constraint) and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from services.common.settings import BackendSettings
from services.common.upstream import BackendObserver, CircuitBreaker, Upstream


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
        response, attempts = await self.upstream.request(
            "POST", "/v1/chat/completions", body, request_id=request_id, label=body["model"]
        )
        reply = response.json()
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

    async def models(self) -> list[str]:
        """The model and adapter names the backend serves."""
        response, _ = await self.upstream.request("GET", "/v1/models")
        return [entry["id"] for entry in response.json()["data"]]

    async def ready(self) -> bool:
        """Whether the backend answers its health check now (no retries)."""
        return await self.upstream.healthy("/health")
