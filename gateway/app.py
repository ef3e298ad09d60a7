"""``create_app(settings=None)``: the gateway, the beamline's one entry point.

Run with ``ptychoagent serve gateway`` or
``uvicorn --factory gateway.app:create_app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx
from fastapi import FastAPI

from gateway.api import router
from gateway.auth import authenticate
from gateway.bench.jobs import BenchJobs
from gateway.bench.store import RunStore
from gateway.keys import KeyStore
from gateway.metrics import GatewayMetrics
from gateway.refine.api import router as refine_router
from gateway.refine.service import RefineService
from gateway.refine.store import RefineStore
from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.store import PredictionStore
from gateway.ui import STATIC_PATH, build_ui_router, static_files
from ptychowire.diagnosis import BACKENDS, DiagnoseRequest
from ptychowire.gateway import AnalyzeRequest
from ptychowire.refine import RefineRequest
from services.common.database import make_engine, ping
from services.common.openapi import add_schemas
from services.common.uploads import image_body_bytes
from services.common.upstream import Upstream
from services.common.web import presented_key, service_app

API_PATH = "/v1/"
IMAGE_ROUTES = ("/v1/diagnose", "/v1/analyze")
"""The routes whose body carries an image (``max_image_bytes`` as base64)."""
REFINE_ROUTE = "/v1/refine"
"""The route whose body carries an experiment file (``max_experiment_bytes``)."""


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The app; the database is migrated at start-up. ``transports`` replaces the
    network transport to ``diagnosis``, ``agent``, ``retriever`` or ``reconstructor``
    (tests run the real services in-process through ``httpx.ASGITransport``)."""
    settings = settings or GatewaySettings()
    transports = transports or {}
    metrics = GatewayMetrics()
    engine = make_engine(settings.database_url)
    keys = KeyStore(engine)
    store = PredictionStore(engine)

    def upstream(name: str, what: str, circuits: tuple[str, ...] = ()) -> Upstream | None:
        block = getattr(settings, name)
        if block is None:
            return None
        return Upstream(
            block,
            what,
            transport=transports.get(name),
            observer=metrics.upstream_observer(name),
            circuits=circuits,
        )

    diagnosis = upstream("diagnosis", "the diagnosis service", BACKENDS)
    agent = upstream("agent", "the ptycho_agent service")
    retriever = upstream("retriever", "the retriever")
    reconstructor = upstream("reconstructor", "the reconstructor")
    assert diagnosis is not None
    assert agent is not None
    assert reconstructor is not None
    service = GatewayService(settings, store, metrics, diagnosis, agent, retriever)
    runs = RunStore(engine)
    jobs = BenchJobs(runs, service, Path(settings.reports_dir))
    refine = RefineService(RefineStore(engine), service, reconstructor)
    clients = [c for c in (diagnosis, agent, retriever, reconstructor) if c is not None]

    async def database_ready() -> bool:
        return await asyncio.to_thread(ping, engine)

    async def migrate() -> None:
        await asyncio.to_thread(store.create_schema)

    async def admit(headers: Mapping[str, str], path: str) -> None:
        # a body for the API comes with a key the store knows, or it is not read; the
        # route checks the key's scope (the UI's login form has its key in the body)
        if path.startswith(API_PATH):
            await authenticate(keys, presented_key(headers))

    async def close() -> None:
        await refine.stop()
        await jobs.stop()
        for client in clients:
            await client.aclose()
        engine.dispose()

    app = service_app(
        "gateway",
        settings,
        metrics,
        router,
        service,
        {
            "database": database_ready,
            "diagnosis": lambda: diagnosis.healthy("/readyz"),
            "agent": lambda: agent.healthy("/readyz"),
        },
        startup=(migrate, refine.start),
        shutdown=(close,),
        guarded=False,
        admit=admit,
        body_limits={
            **dict.fromkeys(IMAGE_ROUTES, image_body_bytes(settings.max_image_bytes)),
            REFINE_ROUTE: settings.max_experiment_bytes
            + image_body_bytes(settings.max_image_bytes),
        },
    )
    app.state.keys = keys
    app.state.jobs = jobs
    app.state.refine = refine
    app.include_router(refine_router)
    add_schemas(app, DiagnoseRequest, AnalyzeRequest, RefineRequest)
    app.include_router(build_ui_router())
    app.mount(STATIC_PATH, static_files(), name="ui-static")
    return app
