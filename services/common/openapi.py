"""The OpenAPI document of every service says every answer a route can give: each error
as ``application/problem+json`` with the one :class:`ProblemDetail` schema.

Done once, for every app that :func:`services.common.web.service_app` builds, by
:func:`describe_problems`. It adds to each operation the errors its shape implies:

=====  =====================================================================
401    it declares a security scheme (an API key)
404    it has a path parameter
400    it has a request body (one that cannot be parsed)
413    it has a request body (bodies are capped)
422    it has a parameter, a header or a body (FastAPI's ``HTTPValidationError``
       is replaced: the real body is problem+json)
=====  =====================================================================

and turns every error response a router or a route declares with
:func:`problem_responses` (403 for scopes, 409, 415 for image bodies, 502/503 for
backends and the database) into the same problem+json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ptychowire.problem import PROBLEM_MEDIA_TYPE, ProblemDetail

SCHEMA_REF = "#/components/schemas/{model}"
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
PROBLEMS = {
    400: "Bad request: no Content-Type, or a body that is not what the route reads.",
    401: "No API key, or one that is not valid (`WWW-Authenticate: Bearer`).",
    403: "The API key is valid but lacks the scope this route needs.",
    404: "Nothing with that id, file, adapter or path.",
    409: "The request conflicts with what is running (the body names it).",
    413: "The body or the image is over the limits (bytes or pixels).",
    415: "A Content-Type or an image format this route does not read.",
    422: "Invalid input: a field, a parameter or a header is wrong (`errors` lists "
    "each), or the model's answer maps to no label.",
    502: "A backend answered, but not usefully.",
    503: "A backend or the database is unavailable after retries, or its circuit is "
    "open; try again after `Retry-After`.",
}
"""Every error status a route may declare, with what it means."""


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    schema = {"$ref": SCHEMA_REF.format(model=ProblemDetail.__name__)}
    return {
        "description": description or PROBLEMS[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or a route (or ``openapi_extra["responses"]``):
    these statuses, as problem+json."""
    return {str(status): _problem(status) for status in statuses}


BACKEND_PROBLEMS = problem_responses(404, 502, 503)
"""What a route that calls a model backend may also answer: an unknown adapter (404),
an answer that is no use (502), the backend down or its circuit open (503)."""


def _implied(operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    body = "requestBody" in operation
    implied = set()
    if parameters or body:
        implied.add(422)
    if operation.get("security"):
        implied.add(401)
    if any(p.get("in") == "path" for p in parameters):
        implied.add(404)
    if body:
        implied.update((400, 413))
    return implied


def _describe(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            codes = [str(code) for code in responses]
            declared = {int(code) for code in codes if code.isdigit() and int(code) >= 400}
            for status in sorted(declared | _implied(operation)):
                given = responses.get(str(status), {}).get("description")
                fastapi_default = status == 422 and given == "Validation Error"
                responses[str(status)] = _problem(status, None if fastapi_default else given)
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    add_component_schemas(document, ProblemDetail)
    return document


def add_component_schemas(document: dict[str, Any], *models: type[BaseModel]) -> None:
    """Put ``models`` (and the models they use) in ``document``'s components."""
    _, schemas = models_json_schema(
        [(model, "validation") for model in models], ref_template=SCHEMA_REF
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.get("$defs", {}).items():
        components.setdefault(name, schema)


def describe_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe every error as problem+json (see the module)."""
    _extend(app, _describe)


def add_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put ``models`` (and what they use) in the app's OpenAPI components, for routes
    whose body schema is given by reference in ``openapi_extra``."""

    def add(document: dict[str, Any]) -> dict[str, Any]:
        add_component_schemas(document, *models)
        return document

    _extend(app, add)


def _extend(app: FastAPI, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Wrap ``app.openapi`` with ``change``; the document is built once and kept."""
    build = app.openapi
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(change(build()))
            app.openapi_schema = built
        return built

    app.openapi = openapi  # type: ignore[method-assign]
