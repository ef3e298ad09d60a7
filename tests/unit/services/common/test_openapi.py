"""The OpenAPI document of a service app describes every error as problem+json: the
statuses a route's shape implies and those its router declares, with FastAPI's own 422
schema gone. Driven on a minimal app built the one way (``service_app``)."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Header
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretStr

from ptychowire.base import BASE64_PATTERN, Base64
from ptychowire.problem import PROBLEM_MEDIA_TYPE
from services.common.metrics import ServiceMetrics
from services.common.openapi import BACKEND_PROBLEMS, ProblemDetail, problem_responses
from services.common.settings import ServiceSettings
from services.common.web import service_app

PROBLEM = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}


class Upload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    image_base64: Base64


def _document(keys: tuple[str, ...] = ()) -> dict[str, Any]:
    router = APIRouter(prefix="/v1", responses=problem_responses(503))

    @router.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    @router.post("/items", responses=BACKEND_PROBLEMS)
    async def add(body: Upload, key: Annotated[str | None, Header(max_length=8)] = None) -> None:
        return None

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    settings = ServiceSettings(api_keys=[SecretStr(k) for k in keys])
    app = service_app("demo", settings, ServiceMetrics("demo"), router, object(), {})
    document: dict[str, Any] = app.openapi()
    assert app.openapi() is document  # built once
    return document


def _errors(operation: dict[str, Any]) -> dict[str, Any]:
    return {code: r for code, r in operation["responses"].items() if int(code) >= 400}


def test_every_error_response_is_problem_json_and_fastapis_422_schema_is_gone() -> None:
    document = _document()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["ProblemDetail"]["required"] == ["type", "title", "status", "detail"]
    assert schemas["ProblemDetail"]["additionalProperties"] is True
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in _errors(operation).values():
                assert response["content"] == PROBLEM
                assert response["description"] != "Validation Error"


def test_the_statuses_come_from_the_routes_shape_and_what_the_router_declares() -> None:
    paths = _document()["paths"]
    assert list(_errors(paths["/v1/items/{item}"]["get"])) == ["404", "422", "503"]
    assert list(_errors(paths["/v1/items"]["post"])) == ["400", "404", "413", "422", "502", "503"]
    assert list(_errors(paths["/v1/plain"]["get"])) == ["503"]
    assert list(_errors(paths["/healthz"]["get"])) == []
    assert list(_errors(paths["/readyz"]["get"])) == ["503"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


def test_with_api_keys_the_routes_declare_them_and_a_401() -> None:
    open_paths = _document()["paths"]
    keyed = _document(keys=("k" * 20,))
    operation = keyed["paths"]["/v1/items/{item}"]["get"]
    assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert "401" in operation["responses"]
    assert "401" not in open_paths["/v1/items/{item}"]["get"]["responses"]
    assert "security" not in keyed["paths"]["/healthz"]["get"]


def test_base64_fields_say_their_pattern_and_encoding() -> None:
    field = _document()["components"]["schemas"]["Upload"]["properties"]["image_base64"]
    assert field["pattern"] == BASE64_PATTERN
    assert (field["format"], field["contentEncoding"]) == ("byte", "base64")


@given(st.binary(max_size=64))
def test_the_base64_pattern_admits_every_encoding(data: bytes) -> None:
    assert re.fullmatch(BASE64_PATTERN, base64.b64encode(data).decode())


@given(st.from_regex(BASE64_PATTERN, fullmatch=True))
def test_what_the_base64_pattern_admits_decodes(text: str) -> None:
    base64.b64decode(text, validate=True)


@pytest.mark.parametrize("text", ["abc", "ab=c", "YW Jj", "YWJj\n", "YW-j", "====", "Y==="])
def test_the_base64_pattern_refuses_what_does_not_decode_strictly(text: str) -> None:
    assert not re.fullmatch(BASE64_PATTERN, text)


@pytest.mark.anyio
async def test_the_real_422_is_the_documented_problem_body() -> None:
    router = APIRouter()

    @router.post("/v1/items")
    async def add(body: Upload) -> None:
        return None

    app = service_app("demo", ServiceSettings(), ServiceMetrics("demo"), router, object(), {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.post("/v1/items", json={"name": 7, "image_base64": "YWJj"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = ProblemDetail.model_validate(response.json())
    assert problem.errors is not None
    assert problem.errors[0].loc == ["body", "name"]
