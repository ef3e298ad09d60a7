"""The one client every service uses to reach a model: vLLM's OpenAI-compatible API.

Async, pooled (one ``httpx.AsyncClient`` per service), with timeouts, one retry policy
(:func:`retryable` decides, exponential back-off with a cap), a circuit breaker that fails
fast while the backend is down and lets one trial request through after
``circuit_reset_s``, and an optional LRU response cache keyed on what changes the answer
(model, messages, sampling settings, answer constraint) and nothing else. httpx errors
are translated into ``services.common.errors`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import httpx

from services.common.errors import BackendRejected, BackendUnavailable
from services.common.settings import BackendSettings

log = logging.getLogger(__name__)

CircuitState = Literal["closed", "open", "half_open"]
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class BackendObserver(Protocol):
    """What the client reports (implemented by ``services.common.metrics``)."""

    def backend_call(self, model: str, seconds: float, outcome: str) -> None: ...

    def backend_retry(self, model: str) -> None: ...

    def circuit_state(self, state: CircuitState) -> None: ...


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


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures; open → half-open after
    ``reset_s``, when one trial request goes through; its success closes the circuit,
    its failure opens it again."""

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self.on_change = on_change
        self.state: CircuitState = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.trial_in_flight = False

    def _set(self, state: CircuitState) -> None:
        if state != self.state:
            log.warning("backend circuit %s -> %s", self.state, state)
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and self.clock() - self.opened_at >= self.reset_s:
            self._set("half_open")
        if self.state == "half_open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))

    def success(self) -> None:
        self.consecutive = 0
        self.trial_in_flight = False
        self._set("closed")

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_in_flight = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.opened_at = self.clock()
            self._set("open")


def retryable(error: Exception | None = None, status: int | None = None) -> bool:
    """The one place that decides whether a failed call is worth repeating."""
    if status is not None:
        return status in RETRYABLE_STATUS
    return isinstance(error, httpx.TransportError)  # connect/read/write errors, timeouts


def cache_key(body: dict[str, Any]) -> str:
    """Hash of what changes the answer: model, messages, sampling, constraint."""
    wanted = {
        key: body.get(key)
        for key in ("model", "messages", "temperature", "top_p", "max_tokens", "seed")
    }
    wanted["structured_outputs"] = body.get("structured_outputs")
    canonical = json.dumps(wanted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "message" in body:
            return str(body["message"])
    return response.text[:500]


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
        self.observer = observer
        self.sleep = sleep
        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self.http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_connections),
        )
        self.circuit = CircuitBreaker(
            settings.circuit_failures,
            settings.circuit_reset_s,
            on_change=observer.circuit_state if observer is not None else None,
        )
        self._cache: OrderedDict[str, Completion] = OrderedDict()
        self._last_error = "none recorded"

    async def aclose(self) -> None:
        await self.http.aclose()

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
        reply, latency, attempts = await self._post("/v1/chat/completions", body, request_id)
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
        response, _ = await self._with_retries("GET", "/v1/models", None, None)
        return [entry["id"] for entry in response.json()["data"]]

    async def ready(self) -> bool:
        """Whether the backend answers its health check now (no retries)."""
        try:
            response = await self.http.get("/health", timeout=self.settings.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _post(
        self, path: str, body: dict[str, Any], request_id: str | None
    ) -> tuple[dict[str, Any], float, int]:
        started = time.perf_counter()
        response, attempts = await self._with_retries("POST", path, body, request_id)
        return response.json(), time.perf_counter() - started, attempts

    async def _with_retries(
        self, method: str, path: str, body: dict[str, Any] | None, request_id: str | None
    ) -> tuple[httpx.Response, int]:
        model = str((body or {}).get("model", "-"))
        headers = {"X-Request-ID": request_id} if request_id else {}
        last = self._last_error
        for attempt in range(1, self.settings.max_retries + 2):
            if not self.circuit.allow():
                raise BackendUnavailable(
                    f"the model backend at {self.settings.base_url} is failing; the circuit "
                    f"is open, next try in {self.circuit.retry_in():.0f} s (last error: {last})"
                )
            started = time.perf_counter()
            try:
                response = await self.http.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as error:
                self._observe(model, started, "error")
                self.circuit.failure()
                last = self._last_error = f"{type(error).__name__}: {error}".rstrip(": ")
                if not retryable(error):
                    break
            else:
                if response.status_code < 400:
                    self._observe(model, started, "ok")
                    self.circuit.success()
                    return response, attempt
                last = self._last_error = f"HTTP {response.status_code}: {_message(response)}"
                if not retryable(status=response.status_code):
                    self._observe(model, started, "rejected")
                    self.circuit.success()  # it answered: the backend is up
                    raise self._rejected(response)
                self._observe(model, started, "error")
                self.circuit.failure()
            if attempt <= self.settings.max_retries:
                if self.observer is not None:
                    self.observer.backend_retry(model)
                delay = min(
                    self.settings.backoff_s * 2 ** (attempt - 1), self.settings.backoff_max_s
                )
                await self.sleep(delay)
        raise BackendUnavailable(
            f"the model backend at {self.settings.base_url} did not answer after "
            f"{self.settings.max_retries + 1} attempts: {last}"
        )

    def _rejected(self, response: httpx.Response) -> BackendRejected:
        status = response.status_code
        mapped = 404 if status == 404 else 422 if status in (400, 422) else 502
        return BackendRejected(
            f"the model backend refused the request: {_message(response)}", status=mapped
        )

    def _observe(self, model: str, started: float, outcome: str) -> None:
        if self.observer is not None:
            self.observer.backend_call(model, time.perf_counter() - started, outcome)
