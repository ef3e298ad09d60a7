"""The gateway's OpenAPI document says every answer a generated client can get: the
errors as problem+json per route, the media types of ``/image``, the Idempotency-Key's
length and what base64 the image fields take; the limits it states are the ones kept."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from gateway.idempotency import IDEMPOTENCY_KEY_MAX
from ptychowire.base import BASE64_PATTERN
from ptychowire.problem import PROBLEM_MEDIA_TYPE

pytestmark = pytest.mark.anyio
Stack = Any  # conftest.Stack: the gateway and the services' clients, and a key per scope


async def _document(stack: Stack) -> dict[str, Any]:
    response = await stack.gateway.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(code) for code in document["paths"][path][method]["responses"]}


async def test_every_v1_route_names_its_errors_as_problem_json(stack: Stack) -> None:
    document = await _document(stack)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (method, path)
            if path.startswith("/v1/"):
                assert {401, 403, 422, 503} <= _statuses(document, method, path), path
    for path in ("/v1/diagnose", "/v1/analyze"):
        assert {400, 404, 413, 415, 502} <= _statuses(document, "post", path)
    assert {404, 413, 502} <= _statuses(document, "post", "/v1/recommend")
    assert 409 in _statuses(document, "post", "/v1/benchmarks")
    assert 404 in _statuses(document, "get", "/v1/predictions/{prediction_id}")
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_image_routes_say_their_media_types_and_base64(stack: Stack) -> None:
    document = await _document(stack)
    image = document["paths"]["/v1/predictions/{prediction_id}/image"]["get"]
    assert set(image["responses"]["200"]["content"]) == {
        "image/png",
        "image/jpeg",
        "image/tiff",
        "application/octet-stream",
    }
    for name in ("DiagnoseRequest", "AnalyzeRequest"):
        field = document["components"]["schemas"][name]["properties"]["image_base64"]
        assert field["pattern"] == BASE64_PATTERN
        assert field["contentEncoding"] == "base64"
    body = document["paths"]["/v1/diagnose"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}


async def test_the_idempotency_key_limit_is_documented_and_kept(
    stack: Stack, make_png: Callable[..., bytes]
) -> None:
    document = await _document(stack)
    (header,) = [
        p
        for p in document["paths"]["/v1/diagnose"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    ]
    (text,) = [s for s in header["schema"]["anyOf"] if s.get("type") == "string"]
    assert (text["minLength"], text["maxLength"]) == (1, IDEMPOTENCY_KEY_MAX)
    body = {
        "image_base64": base64.b64encode(make_png(size=32)).decode(),
        "sample": {"sample_type": "Cells"},
    }
    too_long = await stack.gateway.post(
        "/v1/diagnose",
        json=body,
        headers={**stack.auth("predict"), "Idempotency-Key": "k" * (IDEMPOTENCY_KEY_MAX + 1)},
    )
    longest = await stack.gateway.post(
        "/v1/diagnose",
        json=body,
        headers={**stack.auth("predict"), "Idempotency-Key": "k" * IDEMPOTENCY_KEY_MAX},
    )
    assert too_long.status_code == 422
    assert too_long.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "Idempotency-Key" in too_long.json()["detail"]
    assert longest.status_code == 200, longest.text
