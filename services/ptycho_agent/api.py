"""Routes of the ptycho_agent service (thin: the service does the work)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ptychowire.agent import RecommendRequest, RecommendResponse
from services.common.openapi import BACKEND_PROBLEMS
from services.common.web import current_request_id, get_service
from services.ptycho_agent.service import AgentService

ServiceDep = Annotated[AgentService, Depends(get_service)]

router = APIRouter(prefix="/v1", tags=["ptycho_agent"], responses=BACKEND_PROBLEMS)


@router.post("/recommend")
async def recommend(
    body: RecommendRequest, service: ServiceDep, request: Request
) -> RecommendResponse:
    """Which reconstruction parameters to change, as letters, texts and Pty-chi changes."""
    return await service.recommend(body, current_request_id(request))
