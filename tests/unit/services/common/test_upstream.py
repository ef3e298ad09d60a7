"""What counts against an upstream's circuit, and that each backend has its own: a
caller's bad input, or one dead backend, never switches a service off for everyone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.errors import BackendRejected, BackendUnavailable, ServiceError
from services.common.retry import counts_against_circuit
from services.common.settings import UpstreamSettings
from services.common.upstream import Upstream

pytestmark = pytest.mark.anyio


async def _no_sleep(seconds: float) -> None:
    return None


def _upstream(handler: Any, **settings: Any) -> Upstream:
    return Upstream(
        UpstreamSettings(base_url="http://service", **settings),
        "the service",
        transport=httpx.MockTransport(handler),
        sleep=_no_sleep,
        circuits=("vlm", "classifier"),
    )


@pytest.mark.parametrize("status", [400, 404, 413, 415, 422, 500])
async def test_answers_about_the_request_never_open_the_circuit(status: int) -> None:
    """4xx is the caller's input; a 500 is the service answering (a bug for that input):
    either way the service is up, and other callers must not be refused."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": f"no ({status})"})

    upstream = _upstream(handler, max_retries=1, circuit_failures=2)
    for _ in range(5):
        with pytest.raises(ServiceError) as caught:
            await upstream.request("POST", "/v1/diagnose", {})
        assert not isinstance(caught.value, BackendUnavailable)
    assert upstream.circuit.state == "closed"


async def test_each_circuit_opens_alone() -> None:
    """One backend down (its requests answered 503) opens its circuit only."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("backend") == "vlm":
            return httpx.Response(503, json={"detail": "the model backend is down"})
        return httpx.Response(200, json={"ok": True})

    upstream = _upstream(handler, max_retries=1, circuit_failures=2)
    with pytest.raises(BackendUnavailable, match=r"\(vlm\) at http://service did not answer"):
        await upstream.request("POST", "/v1/diagnose?backend=vlm", {}, circuit="vlm")
    with pytest.raises(BackendUnavailable, match="circuit is open"):
        await upstream.request("POST", "/v1/diagnose?backend=vlm", {}, circuit="vlm")
    response, _ = await upstream.request("POST", "/v1/diagnose", {}, circuit="classifier")
    assert response.json() == {"ok": True}
    assert upstream.circuits["vlm"].state == "open"
    assert upstream.circuits["classifier"].state == "closed"


async def test_a_refusal_is_still_the_callers_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": "seed is out of range"})

    with pytest.raises(BackendRejected, match="seed is out of range") as caught:
        await _upstream(handler).request("POST", "/v1/recommend", {})
    assert caught.value.http_status == 422


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        (httpx.ConnectError("x"), None, True),
        (httpx.ReadTimeout("x"), None, True),
        (None, 502, True),
        (None, 503, True),
        (None, 504, True),
        (None, 500, False),
        (None, 429, False),
        (None, 404, False),
        (None, 422, False),
    ],
)
def test_counts_against_circuit(
    error: Exception | None, status: int | None, expected: bool
) -> None:
    assert counts_against_circuit(error, status) is expected
