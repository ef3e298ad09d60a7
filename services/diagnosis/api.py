"""Routes of the diagnosis service (thin: reading the body is the only work here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ptychowire.diagnosis import DiagnoseOptions, DiagnoseResponse
from services.common.openapi import BACKEND_PROBLEMS
from services.common.uploads import openapi_body, read_image_body
from services.common.web import current_request_id, get_service
from services.diagnosis.service import DiagnosisService

ServiceDep = Annotated[DiagnosisService, Depends(get_service)]

router = APIRouter(prefix="/v1", tags=["diagnosis"], responses=BACKEND_PROBLEMS)

OPENAPI_BODY = openapi_body("DiagnoseRequest", "DiagnoseOptions")


@router.post("/diagnose", openapi_extra=OPENAPI_BODY)
async def diagnose(request: Request, service: ServiceDep) -> DiagnoseResponse:
    """Which artifacts a reconstruction shows (labels, the raw answer, examples used)."""
    options, image = await read_image_body(
        request, service.settings.max_image_bytes, DiagnoseOptions
    )
    return await service.diagnose(options, image, current_request_id(request))
