"""The pieces every service app mounts, on a minimal app driven in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from sqlalchemy.exc import OperationalError

from services.common.errors import NotFound
from services.common.metrics import ServiceMetrics
from services.common.settings import ServiceSettings
from services.common.web import (
    RequestContext,
    api_key_guard,
    install_error_handlers,
    operations_router,
    request_id_var,
    service_app,
)

pytestmark = pytest.mark.anyio


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


def _app(ready: bool = True, keys: tuple[str, ...] = ()) -> tuple[FastAPI, ServiceMetrics]:
    metrics = ServiceMetrics("demo")
    settings = ServiceSettings(api_keys=[SecretStr(k) for k in keys])
    app = FastAPI()
    install_error_handlers(app)

    async def check() -> bool:
        return ready

    app.include_router(operations_router(metrics, {"backend": check}))

    @app.post("/v1/echo/{item}", dependencies=[Depends(api_key_guard(settings))])
    async def echo(item: str, body: Echo) -> dict[str, object]:
        if item == "missing":
            raise NotFound(f"no item {item!r}")
        if item == "crash":
            raise RuntimeError("boom")
        if item == "database-down":
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        return {"item": item, "n": body.n, "request_id": request_id_var.get()}

    app.add_middleware(RequestContext, metrics=metrics)
    return app, metrics


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://svc")


async def test_the_request_id_is_taken_or_made_and_travels() -> None:
    app, _ = _app()
    async with _client(app) as client:
        given = await client.post("/v1/echo/a", json={"n": 1}, headers={"X-Request-ID": "r-42"})
        made = await client.post("/v1/echo/a", json={"n": 1})
    assert given.headers["X-Request-ID"] == "r-42"
    assert given.json()["request_id"] == "r-42"
    assert len(made.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("path", "body", "status", "slug", "detail"),
    [
        ("/v1/echo/missing", {"n": 1}, 404, "not-found", "no item 'missing'"),
        ("/v1/echo/a", {"n": "x"}, 422, "invalid-input", "body.n: Input should be a valid"),
        ("/v1/echo/a", {"n": 1, "extra": 2}, 422, "invalid-input", "body.extra: Extra inputs"),
        ("/v1/nowhere", {}, 404, "not-found", "Not Found"),
        ("/v1/echo/crash", {"n": 1}, 500, "internal", "unexpected error"),
        ("/v1/echo/database-down", {"n": 1}, 503, "database-unavailable", "does not answer"),
    ],
)
async def test_every_failure_is_problem_json_with_the_request_id(
    path: str, body: dict[str, object], status: int, slug: str, detail: str
) -> None:
    app, _ = _app()
    async with _client(app) as client:
        response = await client.post(path, json=body, headers={"X-Request-ID": "r-7"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/" + slug)
    assert problem["status"] == status
    assert detail in problem["detail"]
    assert problem["instance"] == "r-7"


async def test_readiness_names_what_is_not_ready() -> None:
    app, _ = _app(ready=False)
    async with _client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "backend did not answer" in response.json()["detail"]
    assert response.json()["checks"] == {"backend": False}


async def test_requests_are_counted_by_route_template() -> None:
    app, metrics = _app()
    async with _client(app) as client:
        await client.post("/v1/echo/a", json={"n": 1})
        await client.post("/v1/echo/b", json={"n": 1})
        await client.post("/v1/echo/missing", json={"n": 1})
        text = (await client.get("/metrics")).text
    labels = {"route": "/v1/echo/{item}", "method": "POST"}
    value = metrics.registry.get_sample_value
    assert value("ptycho_demo_requests_total", {**labels, "status": "200"}) == 2
    assert value("ptycho_demo_requests_total", {**labels, "status": "404"}) == 1
    assert 'ptycho_demo_backend_circuit_state{state="closed"} 1.0' in text


async def test_odd_methods_and_paths_make_no_new_label_values() -> None:
    app, metrics = _app()
    async with _client(app) as client:
        lines = []
        await client.get("/metrics")  # the scrapes' own series
        for n in range(300):
            await client.request(f"M{n}", "/healthz")
            await client.request("GET", f"/nowhere/{n}")
            await client.request(f"X{n}", f"/v1/echo/{n}")
            if n in (0, 299):
                lines.append(len((await client.get("/metrics")).text.splitlines()))
    series = metrics.registry.get_sample_value
    assert series("ptycho_demo_requests_total", _request("/healthz", "other", 405)) == 300
    assert series("ptycho_demo_requests_total", _request("unmatched", "GET", 404)) == 300
    assert series("ptycho_demo_requests_total", _request("/v1/echo/{item}", "other", 405)) == 300
    assert lines[0] == lines[1]  # no series after the first round


def _request(route: str, method: str, status: int) -> dict[str, str]:
    return {"route": route, "method": method, "status": str(status)}


async def test_api_keys() -> None:
    app, _ = _app(keys=("k" * 20,))
    async with _client(app) as client:
        missing = await client.post("/v1/echo/a", json={"n": 1})
        wrong = await client.post("/v1/echo/a", json={"n": 1}, headers={"X-API-Key": "nope"})
        bearer = await client.post(
            "/v1/echo/a", json={"n": 1}, headers={"Authorization": "Bearer " + "k" * 20}
        )
        header = await client.post("/v1/echo/a", json={"n": 1}, headers={"X-API-Key": "k" * 20})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert "needs an API key" in missing.json()["detail"]
    assert wrong.status_code == 401
    assert (bearer.status_code, header.status_code) == (200, 200)


async def test_a_service_refuses_a_body_without_its_key_and_caps_it_as_it_streams() -> None:
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: Echo) -> dict[str, int]:
        return {"n": body.n}

    settings = ServiceSettings(api_keys=[SecretStr("k" * 20)], max_body_bytes=1000)
    app = service_app("demo", settings, ServiceMetrics("demo"), router, object(), {})
    key = {"X-API-Key": "k" * 20, "Content-Type": "application/json"}

    async def chunks(size: int) -> AsyncIterator[bytes]:
        yield b'{"n": 1' + b" " * size
        yield b"}"

    async with _client(app) as client:
        no_key = await client.post("/v1/echo", content=chunks(10))
        fits = await client.post("/v1/echo", content=chunks(900), headers=key)
        declared = await client.post("/v1/echo", json={"n": 1, "pad": "x" * 1000}, headers=key)
        streamed = await client.post("/v1/echo", content=chunks(2000), headers=key)
    assert no_key.status_code == 401
    assert no_key.headers["WWW-Authenticate"] == "Bearer"
    assert fits.json() == {"n": 1}
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/payload-too-large")
        assert "1,000" in response.json()["detail"]


async def test_a_query_parameter_given_twice_is_refused_not_guessed() -> None:
    router = APIRouter()

    @router.get("/v1/items")
    async def items(sample_type: str = "any") -> dict[str, str]:
        return {"sample_type": sample_type}

    app = service_app("demo", ServiceSettings(), ServiceMetrics("demo"), router, object(), {})
    async with _client(app) as client:
        once = await client.get("/v1/items", params={"sample_type": "a"})
        twice = await client.get("/v1/items?sample_type=a&sample_type=b")
    assert once.json() == {"sample_type": "a"}
    assert twice.status_code == 422
    assert twice.headers["content-type"] == "application/problem+json"
    assert "sample_type" in twice.json()["detail"]


def test_production_refuses_placeholder_or_missing_keys() -> None:
    with pytest.raises(ValidationError, match="production needs api_keys"):
        ServiceSettings(environment="production")
    with pytest.raises(ValidationError, match="real secrets"):
        ServiceSettings(environment="production", api_keys=[SecretStr("changeme")])
    ServiceSettings(environment="production", api_keys=[SecretStr("x" * 32)])


def test_a_connection_stays_usable_after_a_500_and_a_database_503(
    serve: Callable[..., Any], keep_alive: Callable[..., Any]
) -> None:
    app, metrics = _app()
    with serve(app) as url:
        answers = keep_alive(
            url,
            [
                ("POST", "/v1/echo/crash", {"n": 1}),
                ("POST", "/v1/echo/database-down", {"n": 1}),
                ("POST", "/v1/echo/a", {"n": 1}),
            ],
        )
    assert [status for status, _ in answers] == [500, 503, 200]
    assert answers[0][1]["type"].endswith("/internal")
    assert answers[1][1]["type"].endswith("/database-unavailable")
    labels = {"route": "/v1/echo/{item}", "method": "POST"}
    value = metrics.registry.get_sample_value
    assert value("ptycho_demo_requests_total", {**labels, "status": "503"}) == 1
