"""``GET /info``: what a service answers with (its engine's URL, the model it asks for
by default, and that adapter's SHA-256), so that a benchmark run can record it.

The adapter's hash is read from the adapter registry of the service's working folder
(``artifacts/registry.json``, :func:`ptychobench.provenance.adapter_sha256`) on the first
request and kept; None when the served model is not a registered adapter (a base model).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from services.common.settings import BackendSettings


def info_router(service: str, backend: BackendSettings, root: Path | None = None) -> APIRouter:
    router = APIRouter(tags=["operations"])
    known: dict[str, Any] = {}

    @router.get("/info")
    async def info() -> dict[str, Any]:
        """The engine URL, the served model and the SHA-256 of its adapter files."""
        if not known:
            from ptychobench.provenance import adapter_sha256

            digest = await asyncio.to_thread(adapter_sha256, backend.model, root or Path.cwd())
            known.update(
                service=service,
                engine_url=backend.base_url,
                served_model=backend.model,
                adapters={backend.model: digest},
            )
        return known

    return router


__all__ = ["info_router"]
