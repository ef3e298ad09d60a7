"""The gateway in front of real services, in-process: the diagnosis service with its
committed classifier, the retriever, and a real agent service whose engine is not
running (nothing listens on its port), over real SQLite databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.settings import AgentUpstream, DiagnosisUpstream, GatewaySettings
from services.common.database import make_engine
from services.common.settings import UpstreamSettings
from services.diagnosis.app import create_app as create_diagnosis
from services.diagnosis.settings import DiagnosisBackendSettings, DiagnosisSettings
from services.ptycho_agent.app import create_app as create_agent
from services.ptycho_agent.settings import AgentBackendSettings, AgentSettings
from services.retriever.app import create_app as create_retriever
from services.retriever.settings import RetrieverSettings

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
CLASSIFIER = ROOT / "classifiers" / "physics-v1"
FAST = {"max_retries": 1, "backoff_s": 0, "connect_timeout_s": 1}
SCOPES = ("predict", "feedback", "admin")


@dataclass
class Apps:
    gateway: FastAPI
    diagnosis: FastAPI
    retriever: FastAPI
    database: str

    def keys(self) -> dict[str, str]:
        """One key per scope, named ``<scope>-key`` (the gateway's database migrated)."""
        engine = make_engine(self.database)
        try:
            store = KeyStore(engine)
            return {scope: store.create(f"{scope}-key", [scope])[1] for scope in SCOPES}
        finally:
            engine.dispose()  # no connection left for the garbage collector to close


@dataclass
class Stack:
    gateway: httpx.AsyncClient
    diagnosis: httpx.AsyncClient
    retriever: httpx.AsyncClient
    keys: dict[str, str]
    app: FastAPI
    """The gateway's app itself."""

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    async def ui_login(self, scope: str) -> str:
        """Sign the gateway client in to ``/ui`` through the form with the ``scope``
        key; the CSRF token the form carried."""
        form = await self.gateway.get("/ui/login")
        csrf = self.gateway.cookies["ptycho_ui_csrf"]
        assert f'value="{csrf}"' in form.text
        signed = await self.gateway.post(
            "/ui/login", data={"api_key": self.keys[scope], "csrf_token": csrf}
        )
        assert signed.status_code == 303, signed.text
        return csrf


def build_apps(tmp_path: Path, dead_port: int, database: str) -> Apps:
    """The gateway over ``database`` in front of the real services (the agent's engine
    at ``dead_port``, where nothing listens)."""
    diagnosis = create_diagnosis(
        DiagnosisSettings(
            classifier=str(CLASSIFIER),
            examples_dataset=str(DATASET),
            backend=DiagnosisBackendSettings(base_url="http://127.0.0.1:9", max_retries=0),
        )
    )
    agent = create_agent(
        AgentSettings(
            examples_dataset=str(DATASET),
            backend=AgentBackendSettings(base_url=f"http://127.0.0.1:{dead_port}", **FAST),
        )
    )
    retriever = create_retriever(
        RetrieverSettings(database_url=f"sqlite:///{tmp_path / 'pool.db'}", semantic=False)
    )
    gateway = create_app(
        GatewaySettings(
            database_url=database,
            diagnosis=DiagnosisUpstream(base_url="http://diagnosis", **FAST),
            agent=AgentUpstream(base_url="http://agent", **FAST),
            retriever=UpstreamSettings(base_url="http://retriever", **FAST),
            max_image_bytes=2_000_000,
            reports_dir=str(tmp_path / "reports"),
        ),
        transports={
            "diagnosis": httpx.ASGITransport(app=diagnosis),
            "agent": httpx.ASGITransport(app=agent),
            "retriever": httpx.ASGITransport(app=retriever),
        },
    )
    return Apps(gateway, diagnosis, retriever, database)


@pytest.fixture
def apps(tmp_path: Path, free_tcp_port: Callable[[], int]) -> Apps:
    return build_apps(tmp_path, free_tcp_port(), f"sqlite:///{tmp_path / 'gateway.db'}")


@pytest.fixture
def postgres_apps(tmp_path: Path, free_tcp_port: Callable[[], int], empty_postgres: str) -> Apps:
    """The same over the session's PostgreSQL database (emptied first)."""
    return build_apps(tmp_path, free_tcp_port(), empty_postgres)


def _asgi(app: Any, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")


@asynccontextmanager
async def _running(apps: Apps) -> AsyncIterator[Stack]:
    async with (
        apps.gateway.router.lifespan_context(apps.gateway),
        apps.retriever.router.lifespan_context(apps.retriever),
        _asgi(apps.gateway, "gateway") as client,
        _asgi(apps.diagnosis, "diagnosis") as diagnosis_client,
        _asgi(apps.retriever, "retriever") as retriever_client,
    ):
        yield Stack(client, diagnosis_client, retriever_client, apps.keys(), apps.gateway)


@pytest.fixture
async def stack(apps: Apps) -> AsyncIterator[Stack]:
    async with _running(apps) as running:
        yield running


@pytest.fixture
async def postgres_stack(postgres_apps: Apps) -> AsyncIterator[Stack]:
    async with _running(postgres_apps) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def any_apps(request: pytest.FixtureRequest) -> Apps:
    """The apps over SQLite, then over PostgreSQL: for what the two databases take
    differently (int4 columns, NUL bytes in text)."""
    return request.getfixturevalue("apps" if request.param == "sqlite" else "postgres_apps")


@pytest.fixture
async def any_stack(any_apps: Apps) -> AsyncIterator[Stack]:
    async with _running(any_apps) as running:
        yield running
