"""Routes of the reconstructor (thin: the service does the work)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from ptychowire.reconstructor import JobRequest, JobResponse, JobResult
from services.common.errors import BadRequest, InvalidInput, UnsupportedMediaType
from services.common.uploads import parse_json, validate_body
from services.common.web import get_service
from services.reconstructor.service import IMAGE_FILE, RESULT_FILE, ReconstructorService

ServiceDep = Annotated[ReconstructorService, Depends(get_service)]

router = APIRouter(prefix="/v1/jobs", tags=["reconstructor"])

SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["experiment"],
                    "properties": {
                        "experiment": {"type": "string", "format": "binary"},
                        "request": {"type": "string", "description": "JobRequest as JSON"},
                    },
                }
            },
        },
    }
}


@router.post("", status_code=202, openapi_extra=SUBMIT_BODY)
async def submit(request: Request, service: ServiceDep, response: Response) -> JobResponse:
    """Queue a reconstruction: the experiment as the multipart file part ``experiment``
    (options as JSON in the form field ``request``), or JSON naming a server-side file.
    202 with the job and its ``Location``; a bad experiment is refused here (4xx)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        job = await service.submit(
            validate_body(JobRequest, parse_json(await request.body())), None
        )
    elif content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=2) as form:
            unknown = sorted(set(form.keys()) - {"experiment", "request"})
            if unknown:
                raise InvalidInput(
                    f"unknown form field(s) {unknown}; send 'experiment' and 'request'"
                )
            upload = form.get("experiment")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("the multipart body needs the file part 'experiment'")
            raw = form.get("request") or "{}"
            if not isinstance(raw, str):
                raise InvalidInput("the 'request' form field must be JSON text, not a file")
            job = await service.submit(validate_body(JobRequest, parse_json(raw)), upload)
    elif not content_type:
        raise BadRequest("the request has no Content-Type; send multipart/form-data or JSON")
    else:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted; send multipart/form-data (file "
            "part 'experiment') or application/json (experiment_path)"
        )
    response.headers["Location"] = job.links.self
    return job


@router.get("/{job_id}")
async def get_job(job_id: str, service: ServiceDep) -> JobResponse:
    """State and progress (epochs done of all)."""
    return await service.job(job_id)


@router.delete("/{job_id}", status_code=202)
async def cancel(job_id: str, service: ServiceDep, response: Response) -> JobResponse:
    """Cancel: a queued job at once (200), a running one at the end of its epoch (202)."""
    job, cancelled = await service.cancel(job_id)
    if cancelled:
        response.status_code = 200
    return job


@router.get("/{job_id}/result")
async def result(job_id: str, service: ServiceDep) -> JobResult:
    """Losses, no-reference metrics and what ran (409 until the job is done)."""
    return await service.result(job_id)


@router.get("/{job_id}/result/image.png", response_class=FileResponse)
async def image(job_id: str, service: ServiceDep) -> FileResponse:
    """The reconstructed phase as the diagnosis service reads it (8-bit greyscale PNG)."""
    return FileResponse(await service.result_file(job_id, IMAGE_FILE), media_type="image/png")


@router.get("/{job_id}/result/reconstruction.h5", response_class=FileResponse)
async def reconstruction(job_id: str, service: ServiceDep) -> FileResponse:
    """Object, probe, corrected positions and losses (ptychodus's product layout)."""
    return FileResponse(
        await service.result_file(job_id, RESULT_FILE),
        media_type="application/x-hdf5",
        filename=f"{job_id}-reconstruction.h5",
    )
