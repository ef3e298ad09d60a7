"""``create_app(settings=None)``: the ptycho_agent service.

Run with ``uvicorn --factory services.ptycho_agent.app:create_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from services.common.backend import BackendClient
from services.common.examples import DatasetExamples, ExampleSource, RetrieverExamples
from services.common.metrics import ServiceMetrics
from services.common.web import (
    RequestContext,
    api_key_guard,
    configure_logging,
    install_error_handlers,
    operations_router,
)
from services.ptycho_agent.api import router
from services.ptycho_agent.service import AgentService
from services.ptycho_agent.settings import AgentSettings


def create_app(
    settings: AgentSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app with its resources (no I/O happens until a request or a readiness check);
    ``transport`` replaces the backend's network transport (tests of error paths)."""
    settings = settings or AgentSettings()
    configure_logging(settings.log_format)
    metrics = ServiceMetrics("agent", tasks=["recommendation"])
    backend = BackendClient(settings.backend, transport=transport, observer=metrics)
    examples: ExampleSource = (
        RetrieverExamples(settings.retriever, observer=metrics)
        if settings.retriever is not None
        else DatasetExamples(settings.examples_dataset)
    )
    service = AgentService(backend, examples, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.aclose()
        await examples.aclose()

    app = FastAPI(title="ptycho_agent", version="1", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(
        operations_router(metrics, {"backend": backend.ready, "examples": examples.ready})
    )
    app.include_router(router, dependencies=[Depends(api_key_guard(settings))])
    app.add_middleware(RequestContext, metrics=metrics)
    return app
