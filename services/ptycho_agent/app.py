"""``create_app(settings=None)``: the ptycho_agent service.

Run with ``ptychoagent serve agent`` or
``uvicorn --factory services.ptycho_agent.app:create_app``.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.common.backend import BackendClient
from services.common.examples import example_source
from services.common.metrics import ServiceMetrics
from services.common.web import service_app
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
    metrics = ServiceMetrics("agent", tasks=["recommendation"])
    backend = BackendClient(settings.backend, transport=transport, observer=metrics)
    examples = example_source(settings.retriever, settings.examples_dataset, metrics)
    service = AgentService(backend, examples, settings, metrics)
    return service_app(
        "ptycho_agent",
        settings,
        metrics,
        router,
        service,
        {"backend": backend.ready, "examples": examples.ready},
        shutdown=(backend.aclose, examples.aclose),
    )
