"""``create_app(settings=None)``: the diagnosis service.

Run with ``ptychoagent serve diagnosis`` or
``uvicorn --factory services.diagnosis.app:create_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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
from services.diagnosis.api import router
from services.diagnosis.service import ClassifierHolder, DiagnosisService
from services.diagnosis.settings import DiagnosisSettings


def create_app(
    settings: DiagnosisSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app with its resources (no I/O until a request or a readiness check);
    ``transport`` replaces the VLM backend's network transport (tests of error paths)."""
    settings = settings or DiagnosisSettings()
    configure_logging(settings.log_format)
    metrics = ServiceMetrics("diagnosis", tasks=["detection"])
    backend = BackendClient(settings.backend, transport=transport, observer=metrics)
    examples: ExampleSource = (
        RetrieverExamples(settings.retriever, observer=metrics)
        if settings.retriever is not None
        else DatasetExamples(settings.examples_dataset)
    )
    classifier = ClassifierHolder(settings.classifier)
    service = DiagnosisService(backend, examples, classifier, settings, metrics)
    checks: dict[str, Callable[[], Awaitable[bool]]] = (
        {"classifier": classifier.ready}
        if settings.default_backend == "classifier"
        else {"backend": backend.ready, "examples": examples.ready}
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.aclose()
        await examples.aclose()

    app = FastAPI(title="diagnosis", version="1", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(operations_router(metrics, checks))
    app.include_router(router, dependencies=[Depends(api_key_guard(settings))])
    app.add_middleware(RequestContext, metrics=metrics)
    return app
