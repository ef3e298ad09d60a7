"""Request bodies that carry one image: JSON with the image base64-encoded in
``image_base64``, or ``multipart/form-data`` with the image as the file part ``image`` and
the other fields as JSON in the form field ``request``.

The diagnosis service and the gateway read them the same way, each with its own options
model (``extra="forbid"``: an unknown field is a 422 that names it).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from services.common.encoding import decode_base64
from services.common.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from services.common.openapi import problem_responses

M = TypeVar("M", bound=BaseModel)
MAX_BASE64_CHARS = 40_000_000


def openapi_body(json_schema: str, options_schema: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its body with :func:`read_image_body`:
    ``json_schema`` names the JSON form (options + ``image_base64``), ``options_schema``
    the ``request`` field of the multipart form; no Content-Type is a 400, any other a 415."""
    return {
        "responses": problem_responses(400, 415),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_schema}"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "string", "format": "binary"},
                            "request": {
                                "type": "string",
                                "description": f"{options_schema} as JSON",
                            },
                        },
                    }
                },
            },
        },
    }


def _invalid(loc: tuple[str, ...], message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": kind}])


def validate_body(model: type[M], data: Any) -> M:
    """``data`` as ``model``; a mismatch is the usual 422, located in the body."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from error


def parse_json(raw: str | bytes) -> Any:
    """A JSON body or form field; invalid JSON is a 422."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise _invalid((), f"the body is not valid JSON: {error}", "json_invalid") from error


def image_body_bytes(max_image_bytes: int) -> int:
    """The largest body of a route that takes an image of ``max_image_bytes``: the image
    as base64, and room for the options."""
    return max_image_bytes * 4 // 3 + 1_000_000


async def read_image_body(request: Request, max_bytes: int, options: type[M]) -> tuple[M, bytes]:
    """The options and the image bytes, from JSON or from a multipart upload."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > image_body_bytes(max_bytes):
        raise PayloadTooLarge(
            f"the request has {int(length):,} bytes; the image limit is {max_bytes:,}"
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        data = parse_json(await request.body())
        if not isinstance(data, dict):
            raise _invalid((), "the body must be a JSON object", "model_type")
        encoded = data.pop("image_base64", None)
        if not isinstance(encoded, str) or not encoded:
            raise _invalid(("image_base64",), "a non-empty base64 string is required", "missing")
        if len(encoded) > MAX_BASE64_CHARS:
            raise PayloadTooLarge(f"image_base64 has more than {MAX_BASE64_CHARS:,} characters")
        parsed = validate_body(options, data)
        image = decode_base64(encoded)
    elif content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            unknown = sorted(set(form.keys()) - {"image", "request"})
            if unknown:
                raise InvalidInput(f"unknown form field(s) {unknown}; send 'image' and 'request'")
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise InvalidInput(
                    "the multipart body needs the image as a file part named 'image'"
                )
            image = await upload.read(max_bytes + 1)
            raw = form.get("request") or "{}"
            if not isinstance(raw, str):
                raise InvalidInput("the 'request' form field must be JSON text, not a file")
        parsed = validate_body(options, parse_json(raw))
    elif not content_type:
        raise BadRequest(
            "the request has no Content-Type; send application/json or multipart/form-data"
        )
    else:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted; send application/json "
            "(image_base64) or multipart/form-data (file part 'image')"
        )
    if len(image) > max_bytes:
        raise PayloadTooLarge(f"the image has more than {max_bytes:,} bytes (the limit)")
    return parsed, image
