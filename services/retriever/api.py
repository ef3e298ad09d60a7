"""Routes of the retriever (thin: the service does the work)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from ptychowire.retriever import (
    AddExampleRequest,
    AddExampleResponse,
    SelectRequest,
    SelectResponse,
    StatsResponse,
)
from services.common.openapi import problem_responses
from services.common.web import get_service
from services.retriever.service import RetrieverService

ServiceDep = Annotated[RetrieverService, Depends(get_service)]

# the database down: 503
router = APIRouter(prefix="/v1/examples", tags=["retriever"], responses=problem_responses(503))


@router.post("/select")
async def select(body: SelectRequest, service: ServiceDep) -> SelectResponse:
    """k examples for a query: ssfs, rfs or semantic; deterministic and nested."""
    return await service.select(body)


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": AddExampleResponse, "description": "An example was replaced."},
        **problem_responses(415),  # the image is in no format we read
    },
)
async def add(
    body: AddExampleRequest, service: ServiceDep, response: Response
) -> AddExampleResponse:
    """Add an example to the pool (or replace the one with the same task and id)."""
    added = await service.add(body)
    if not added.created:
        response.status_code = 200
    return added


@router.get("/stats")
async def stats(service: ServiceDep) -> StatsResponse:
    """Examples per task, split and source."""
    return await service.stats()
