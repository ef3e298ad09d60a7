"""The expert review page at ``/ui``: recent predictions, review with label toggles,
live F1 and benchmark runs, server-rendered, behind the gateway's API keys."""

from __future__ import annotations

from fastapi.staticfiles import StaticFiles

from gateway.ui.routes import STATIC, build_ui_router

STATIC_PATH = "/ui/static"


def static_files() -> StaticFiles:
    """The page's CSS and JavaScript, mounted at :data:`STATIC_PATH`."""
    return StaticFiles(directory=STATIC)


__all__ = ["STATIC_PATH", "build_ui_router", "static_files"]
