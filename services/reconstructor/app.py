"""``create_app(settings=None)``: the reconstructor.

Run with ``ptychoagent serve reconstructor`` or
``uvicorn --factory services.reconstructor.app:create_app``.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from ptychowire.reconstructor import JobRequest
from services.common.database import make_engine, ping
from services.common.openapi import add_schemas
from services.common.web import service_app
from services.reconstructor.api import router
from services.reconstructor.errors import install_queue_full_handler
from services.reconstructor.metrics import ReconstructorMetrics
from services.reconstructor.service import ReconstructorService
from services.reconstructor.settings import ReconstructorSettings
from services.reconstructor.store import JobStore


def create_app(settings: ReconstructorSettings | None = None) -> FastAPI:
    """The app; at start-up the database is migrated, jobs a dead service left running
    are queued again (or marked interrupted) and the workers start."""
    settings = settings or ReconstructorSettings()
    metrics = ReconstructorMetrics()
    engine = make_engine(settings.database_url)
    service = ReconstructorService(JobStore(engine), settings, metrics)

    async def database_ready() -> bool:
        return await asyncio.to_thread(ping, engine)

    async def dispose() -> None:
        engine.dispose()

    app = service_app(
        "reconstructor",
        settings,
        metrics,
        router,
        service,
        {"database": database_ready, "workers": service.ready},
        startup=(service.start,),
        shutdown=(service.stop, dispose),
    )
    install_queue_full_handler(app)
    add_schemas(app, JobRequest)
    return app
