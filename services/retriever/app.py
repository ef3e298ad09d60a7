"""``create_app(settings=None)``: the retriever.

Run with ``ptychoagent serve retriever`` or
``uvicorn --factory services.retriever.app:create_app``.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common.database import make_engine, ping
from services.common.metrics import ServiceMetrics
from services.common.uploads import image_body_bytes
from services.common.web import service_app
from services.retriever.api import router
from services.retriever.semantic import MiniLM, SemanticIndex
from services.retriever.service import RetrieverService
from services.retriever.settings import RetrieverSettings
from services.retriever.store import ExampleStore


def create_app(settings: RetrieverSettings | None = None) -> FastAPI:
    """The app; the database is migrated at start-up."""
    settings = settings or RetrieverSettings()
    metrics = ServiceMetrics("retriever")
    engine = make_engine(settings.database_url)
    store = ExampleStore(engine, refresh_s=settings.refresh_s)
    semantic = SemanticIndex(MiniLM(settings.embedding_model)) if settings.semantic else None
    service = RetrieverService(store, settings, semantic)

    async def database_ready() -> bool:
        return await asyncio.to_thread(ping, engine)

    async def migrate() -> None:
        await asyncio.to_thread(store.create_schema)

    async def dispose() -> None:
        engine.dispose()

    return service_app(
        "retriever",
        settings,
        metrics,
        router,
        service,
        {"database": database_ready},
        startup=(migrate,),
        shutdown=(dispose,),
        body_limits={"/v1/examples": image_body_bytes(settings.max_image_bytes)},
    )
