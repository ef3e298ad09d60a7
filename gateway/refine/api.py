"""Routes of the closed loop (``/v1/refine``); the work is in
:class:`gateway.refine.service.RefineService`; the dependencies are
``gateway.deps``'s aliases."""

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from gateway.deps import PredictKey, ReadKey, RefineDep, ReviewKey
from ptychowire.refine import (
    RefineJobResponse,
    RefineRequest,
    RefineRound,
    RoundReviewRequest,
    RoundReviewResponse,
)
from services.common.errors import BadRequest, InvalidInput, UnsupportedMediaType
from services.common.openapi import problem_responses

JobId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
Number = Annotated[int, PathParam(ge=1, le=1000)]
SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RefineRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["experiment", "request"],
                    "properties": {
                        "experiment": {"type": "string", "format": "binary"},
                        "image": {"type": "string", "format": "binary"},
                        "request": {"type": "string", "description": "RefineRequest as JSON"},
                    },
                }
            },
        },
    }
}


def _validate(raw: str | bytes) -> RefineRequest:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"not valid JSON: {error}", "type": "json_invalid"}]
        ) from error
    try:
        return RefineRequest.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from error


async def _file(form: Any, name: str) -> bytes | None:
    part = form.get(name)
    if part is None:
        return None
    if not isinstance(part, UploadFile):
        raise InvalidInput(f"the form field {name!r} must be a file part")
    data: bytes = await part.read()
    return data


# every route: a key without the scope (403), the database down (503)
router = APIRouter(prefix="/v1/refine", tags=["refine"], responses=problem_responses(403, 503))


@router.post("", status_code=202, openapi_extra=SUBMIT_BODY, responses=problem_responses(415))
async def submit(
    request: Request, refine: RefineDep, key: PredictKey, response: Response
) -> RefineJobResponse:
    """Start the closed loop on an experiment: multipart (file part ``experiment``,
    optional ``image``, JSON ``request``) or JSON naming ``experiment_path`` under
    the gateway's dataset roots. 202 with the job; a bad experiment is a 422 and
    nothing is queued."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        job = await refine.submit(_validate(await request.body()), None, None, key)
    elif content_type == "multipart/form-data":
        async with request.form(max_files=2, max_fields=1) as form:
            unknown = sorted(set(form.keys()) - {"experiment", "image", "request"})
            if unknown:
                raise InvalidInput(f"unknown form field(s) {unknown}")
            raw = form.get("request")
            if not isinstance(raw, str):
                raise InvalidInput("the form field 'request' (RefineRequest as JSON) is needed")
            experiment = await _file(form, "experiment")
            image = await _file(form, "image")
            job = await refine.submit(_validate(raw), experiment, image, key)
    elif not content_type:
        raise BadRequest("the request has no Content-Type; send multipart/form-data or JSON")
    else:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted; send multipart/form-data or "
            "application/json"
        )
    response.headers["Location"] = job.links["self"]
    return job


@router.get("")
async def jobs(
    refine: RefineDep, key: ReadKey, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RefineJobResponse]:
    """The latest refinement jobs, newest first (without their rounds)."""
    return await refine.jobs(limit)


@router.get("/{job_id}")
async def job(job_id: JobId, refine: RefineDep, key: ReadKey) -> RefineJobResponse:
    """A job's state, progress and rounds."""
    return await refine.job(job_id)


@router.get("/{job_id}/rounds")
async def rounds(job_id: JobId, refine: RefineDep, key: ReadKey) -> list[RefineRound]:
    """A job's rounds with their provenance and reviews."""
    return await refine.rounds(job_id)


@router.delete("/{job_id}", status_code=202, responses=problem_responses(409))
async def cancel(job_id: JobId, refine: RefineDep, key: PredictKey) -> RefineJobResponse:
    """Stop a job (at its next step; its reconstruction on the reconstructor is
    cancelled); 409 when it has finished."""
    return await refine.cancel(job_id)


@router.post("/{job_id}/rounds/{number}/review")
async def review(
    job_id: JobId, number: Number, body: RoundReviewRequest, refine: RefineDep, key: ReviewKey
) -> RoundReviewResponse:
    """An expert confirms (the change helped) or rejects a round."""
    return await refine.review(job_id, number, body, key)


@router.get(
    "/{job_id}/rounds/{number}/{which}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def image(
    job_id: JobId,
    number: Number,
    which: Literal["before", "after"],
    refine: RefineDep,
    key: ReadKey,
) -> Response:
    """The phase image before or after a round's change."""
    data = await refine.image(job_id, number, which)
    return Response(data, media_type="image/png")
