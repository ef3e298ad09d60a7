"""Routes of the diagnosis service (thin: reading the body is the only work here)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from services.common.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from services.common.web import current_request_id
from services.diagnosis.protocol import DiagnoseOptions, DiagnoseRequest, DiagnoseResponse
from services.diagnosis.service import DiagnosisService


def get_service(request: Request) -> DiagnosisService:
    service: DiagnosisService = request.app.state.service
    return service


ServiceDep = Annotated[DiagnosisService, Depends(get_service)]

router = APIRouter(prefix="/v1", tags=["diagnosis"])

OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/DiagnoseRequest"},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "request": {
                            "type": "string",
                            "description": "DiagnoseOptions as JSON (sample, k, strategy, …)",
                        },
                    },
                }
            },
        },
    }
}


def _validate(model: type[DiagnoseOptions], raw: str | bytes) -> DiagnoseOptions:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from error


async def read_diagnose_body(request: Request, max_bytes: int) -> tuple[DiagnoseOptions, bytes]:
    """The options and the image bytes, from JSON or from a multipart upload."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes * 4 // 3 + 1_000_000:
        raise PayloadTooLarge(
            f"the request has {int(length):,} bytes; the image limit is {max_bytes:,}"
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = _validate(DiagnoseRequest, await request.body())
        assert isinstance(body, DiagnoseRequest)
        try:
            image = base64.b64decode(body.image_base64, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidInput(f"image_base64 is not valid base64: {error}") from error
        return DiagnoseOptions.model_validate(body.model_dump(exclude={"image_base64"})), image
    if content_type == "multipart/form-data":
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
        return _validate(DiagnoseOptions, raw), image
    if not content_type:
        raise BadRequest(
            "the request has no Content-Type; send application/json or multipart/form-data"
        )
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not accepted; send application/json (image_base64) "
        "or multipart/form-data (file part 'image')"
    )


@router.post("/diagnose", openapi_extra=OPENAPI_BODY)
async def diagnose(request: Request, service: ServiceDep) -> DiagnoseResponse:
    """Which artifacts a reconstruction shows (labels, the raw answer, examples used)."""
    options, image = await read_diagnose_body(request, service.settings.max_image_bytes)
    return await service.diagnose(options, image, current_request_id(request))
