"""``create_app(settings=None)``: the retriever.

Run with ``ptychoagent serve retriever`` or
``uvicorn --factory services.retriever.app:create_app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from services.common.database import make_engine, ping
from services.common.metrics import ServiceMetrics
from services.common.web import (
    RequestContext,
    api_key_guard,
    configure_logging,
    install_error_handlers,
    operations_router,
)
from services.retriever.api import router
from services.retriever.semantic import MiniLM, SemanticIndex
from services.retriever.service import RetrieverService
from services.retriever.settings import RetrieverSettings
from services.retriever.store import ExampleStore


def create_app(settings: RetrieverSettings | None = None) -> FastAPI:
    """The app; the schema is created and the database checked at start-up."""
    settings = settings or RetrieverSettings()
    configure_logging(settings.log_format)
    metrics = ServiceMetrics("retriever")
    engine = make_engine(settings.database_url)
    store = ExampleStore(engine, refresh_s=settings.refresh_s)
    semantic = SemanticIndex(MiniLM(settings.embedding_model)) if settings.semantic else None
    service = RetrieverService(store, settings, semantic)

    async def database_ready() -> bool:
        return await asyncio.to_thread(ping, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(store.create_schema)
        yield
        engine.dispose()

    app = FastAPI(title="retriever", version="1", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.include_router(operations_router(metrics, {"database": database_ready}))
    app.include_router(router, dependencies=[Depends(api_key_guard(settings))])
    app.add_middleware(RequestContext, metrics=metrics)
    return app
