"""The gateway in front of real services, in-process: the diagnosis service with its
committed classifier, the retriever, and a real agent service whose engine is not
running (nothing listens on its port), over real SQLite databases."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Form, UploadFile

from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.settings import (
    AgentUpstream,
    DiagnosisUpstream,
    GatewaySettings,
    ReconstructorUpstream,
)
from ptychobench.labels import OPTIONS
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


@asynccontextmanager
async def _running(apps: Apps, asgi: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with (
        asgi(apps.gateway, "gateway") as client,
        asgi(apps.diagnosis, "diagnosis", lifespan=False) as diagnosis_client,
        asgi(apps.retriever, "retriever") as retriever_client,
    ):
        yield Stack(client, diagnosis_client, retriever_client, apps.keys(), apps.gateway)


@pytest.fixture
async def stack(apps: Apps, asgi: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with _running(apps, asgi) as running:
        yield running


@pytest.fixture
async def postgres_stack(postgres_apps: Apps, asgi: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with _running(postgres_apps, asgi) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def any_apps(request: pytest.FixtureRequest) -> Apps:
    """The apps over SQLite, then over PostgreSQL: for what the two databases take
    differently (int4 columns, NUL bytes in text)."""
    return request.getfixturevalue("apps" if request.param == "sqlite" else "postgres_apps")


@pytest.fixture
async def any_stack(any_apps: Apps, asgi: Callable[..., Any]) -> AsyncIterator[Stack]:
    async with _running(any_apps, asgi) as running:
        yield running


# ------------------------------------------------------------------ the closed loop

REFINE_SAMPLE = "14e1b638"  # Supercrystal, too few iterations (3): Blurring, Low contrast; fix K
REFINE_TRUTH = ["Blurring", "Low contrast"]
NO_RETRIES = {"max_retries": 0, "backoff_s": 0, "connect_timeout_s": 1}


@pytest.fixture(scope="session")
def experiment_bytes() -> bytes:
    """The experiment of :data:`REFINE_SAMPLE` exported from the committed
    PtychoBench-Sim (45 positions, a 3-epoch start), as HDF5 bytes."""
    from ptychobench.experiment_io import write_experiment
    from ptychobench.sim.export import export_experiment

    buffer = io.BytesIO()
    write_experiment(buffer, export_experiment(DATASET, REFINE_SAMPLE, device="cpu"))
    return buffer.getvalue()


@dataclass
class Fakes:
    """What the fake diagnosis and agent answer (set ``letters`` before the loop runs),
    and what they were sent."""

    letters: list[str]
    artifacts: list[str] = field(default_factory=lambda: list(REFINE_TRUTH))
    diagnosed: list[str] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)


def fake_diagnosis(fakes: Fakes) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/diagnose")
    async def diagnose(image: UploadFile, request: str = Form()) -> dict[str, Any]:
        data = await image.read()
        sha = hashlib.sha256(data).hexdigest()
        fakes.diagnosed.append(sha)
        return {
            "labels": fakes.artifacts,
            "raw_answer": ", ".join(fakes.artifacts),
            "unmapped": [],
            "backend": "classifier",
            "adapter": "truth",
            "k": 0,
            "strategy": "ssfs",
            "seed": 0,
            "example_ids": [],
            "image": {"format": "PNG", "mode": "L", "width": 1, "height": 1, "sha256": sha},
            "backend_latency_s": 0.0,
            "latency_s": 0.0,
        }

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def fake_agent(fakes: Fakes) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/recommend")
    async def recommend(body: dict[str, Any]) -> dict[str, Any]:
        fakes.asked.append(body)
        return {
            "recommendations": [
                {"letter": x, "text": OPTIONS[x], "changes": []} for x in fakes.letters
            ],
            "letters": fakes.letters,
            "raw_answer": f"<answer>{', '.join(fakes.letters)}</answer>",
            "unmapped": [],
            "adapter": "oracle",
            "k": 0,
            "strategy": "ssfs",
            "seed": 0,
            "example_ids": [],
            "prompt_version": "test",
            "prompt_hash": "0" * 64,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "backend_latency_s": 0.0,
            "latency_s": 0.0,
        }

    return app


@dataclass
class RefineApps:
    """A real reconstructor app (real Pty-chi on the CPU) and the settings of a gateway
    in front of it, with fake diagnosis and agent services that answer ``fakes``."""

    reconstructor: FastAPI
    settings: GatewaySettings
    recon_database: str
    fakes: Fakes

    def gateway(self, reconstructor_url: str | None = None) -> FastAPI:
        """The gateway: over the reconstructor app in-process, or at ``reconstructor_url``
        (a served one, when the gateway runs on a server of its own)."""
        transports: dict[str, httpx.AsyncBaseTransport] = {
            "diagnosis": httpx.ASGITransport(app=fake_diagnosis(self.fakes)),
            "agent": httpx.ASGITransport(app=fake_agent(self.fakes)),
        }
        settings = self.settings
        if reconstructor_url is None:
            transports["reconstructor"] = httpx.ASGITransport(app=self.reconstructor)
        else:
            upstream = ReconstructorUpstream(base_url=reconstructor_url, **NO_RETRIES)
            settings = settings.model_copy(update={"reconstructor": upstream})
        return create_app(settings, transports=transports)

    def key(self, scopes: tuple[str, ...] = ("predict", "feedback")) -> str:
        """A key named ``beamline`` (the gateway's database migrated)."""
        engine = make_engine(self.settings.database_url)
        try:
            return KeyStore(engine).create("beamline", list(scopes))[1]
        finally:
            engine.dispose()


@pytest.fixture
def fakes() -> Fakes:
    return Fakes(letters=["K"])


@pytest.fixture
def refine_apps(tmp_path: Path, fakes: Fakes) -> RefineApps:
    from services.reconstructor.app import create_app as create_reconstructor
    from services.reconstructor.settings import ReconstructorSettings

    recon_database = f"sqlite:///{tmp_path / 'recon.db'}"
    reconstructor = create_reconstructor(
        ReconstructorSettings(
            database_url=recon_database,
            data_dir=tmp_path / "recon",
            device="cpu",
            progress_interval_s=0,
        )
    )
    settings = GatewaySettings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        diagnosis=DiagnosisUpstream(base_url="http://diagnosis", **NO_RETRIES),
        agent=AgentUpstream(base_url="http://agent", **NO_RETRIES),
        reconstructor=ReconstructorUpstream(base_url="http://reconstructor", **NO_RETRIES),
        refine_dir=str(tmp_path / "refine"),
        refine_poll_s=0.05,
        reports_dir=str(tmp_path / "reports"),
    )
    return RefineApps(reconstructor, settings, recon_database, fakes)
