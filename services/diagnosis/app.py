"""``create_app(settings=None)``: the diagnosis service.

Run with ``ptychoagent serve diagnosis`` or
``uvicorn --factory services.diagnosis.app:create_app``.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from ptychowire.diagnosis import DiagnoseRequest
from services.common.backend import BackendClient
from services.common.examples import example_source
from services.common.metrics import ServiceMetrics
from services.common.openapi import add_schemas
from services.common.uploads import image_body_bytes
from services.common.web import Check, service_app
from services.diagnosis.api import router
from services.diagnosis.service import ClassifierHolder, DiagnosisService
from services.diagnosis.settings import DiagnosisSettings


def create_app(
    settings: DiagnosisSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app with its resources (no I/O until a request or a readiness check);
    ``transport`` replaces the VLM backend's network transport (tests of error paths).
    Readiness checks what the default backend needs: the classifier loads, or the engine
    and the examples answer."""
    settings = settings or DiagnosisSettings()
    metrics = ServiceMetrics("diagnosis", tasks=["detection"])
    backend = BackendClient(settings.backend, transport=transport, observer=metrics)
    examples = example_source(settings.retriever, settings.examples_dataset, metrics)
    classifier = ClassifierHolder(settings.classifier)
    service = DiagnosisService(backend, examples, classifier, settings, metrics)
    checks: dict[str, Check] = (
        {"classifier": classifier.ready}
        if settings.default_backend == "classifier"
        else {"backend": backend.ready, "examples": examples.ready}
    )
    app = service_app(
        "diagnosis",
        settings,
        metrics,
        router,
        service,
        checks,
        shutdown=(backend.aclose, examples.aclose),
        body_limits={"/v1/diagnose": image_body_bytes(settings.max_image_bytes)},
    )
    add_schemas(app, DiagnoseRequest)
    return app
