"""The closed loop at the gateway, in-process: the gateway's ``/v1/refine`` against a
real reconstructor app (real Pty-chi on an experiment exported from the committed
PtychoBench-Sim, 45 positions, a 3-epoch start), with fake diagnosis and agent services
that answer the sample's truth (the point here is the loop, not the models)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Form, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.refine.store import RefineJobRow, RefineStore
from gateway.settings import (
    AgentUpstream,
    DiagnosisUpstream,
    GatewaySettings,
    ReconstructorUpstream,
)
from ptychobench.experiment_io import write_experiment
from ptychobench.labels import OPTIONS
from ptychobench.sim.export import export_experiment
from services.common.database import make_engine
from services.reconstructor.app import create_app as create_reconstructor
from services.reconstructor.settings import ReconstructorSettings
from services.reconstructor.store import JobRow

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed"),
]
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
SAMPLE = "14e1b638"  # Supercrystal, too few iterations (3): Blurring, Low contrast; fix K
TRUTH = ["Blurring", "Low contrast"]
FAST = {"max_retries": 0, "backoff_s": 0, "connect_timeout_s": 1}


@pytest.fixture(scope="module")
def experiment_bytes() -> bytes:
    buffer = io.BytesIO()
    write_experiment(buffer, export_experiment(DATASET, SAMPLE, device="cpu"))
    return buffer.getvalue()


@dataclass
class Fakes:
    letters: list[str]
    artifacts: list[str] = field(default_factory=lambda: list(TRUTH))
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
class Loop:
    client: httpx.AsyncClient
    headers: dict[str, str]
    gateway: FastAPI
    database: str
    recon_database: str


def settings_for(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        diagnosis=DiagnosisUpstream(base_url="http://diagnosis", **FAST),
        agent=AgentUpstream(base_url="http://agent", **FAST),
        reconstructor=ReconstructorUpstream(base_url="http://reconstructor", **FAST),
        refine_dir=str(tmp_path / "refine"),
        refine_poll_s=0.05,
        reports_dir=str(tmp_path / "reports"),
    )


@asynccontextmanager
async def running(tmp_path: Path, fakes: Fakes) -> AsyncIterator[Loop]:
    recon_db = f"sqlite:///{tmp_path / 'recon.db'}"
    reconstructor = create_reconstructor(
        ReconstructorSettings(
            database_url=recon_db,
            data_dir=tmp_path / "recon",
            device="cpu",
            progress_interval_s=0,
        )
    )
    settings = settings_for(tmp_path)
    gateway = create_app(
        settings,
        transports={
            "diagnosis": httpx.ASGITransport(app=fake_diagnosis(fakes)),
            "agent": httpx.ASGITransport(app=fake_agent(fakes)),
            "reconstructor": httpx.ASGITransport(app=reconstructor),
        },
    )
    async with (
        reconstructor.router.lifespan_context(reconstructor),
        gateway.router.lifespan_context(gateway),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as client,
    ):
        engine = make_engine(settings.database_url)
        token = KeyStore(engine).create("beamline", ["predict", "feedback"])[1]
        engine.dispose()
        yield Loop(
            client, {"Authorization": f"Bearer {token}"}, gateway, settings.database_url, recon_db
        )


async def submit(loop: Loop, experiment: bytes, **request: Any) -> httpx.Response:
    body = {"sample_type": "Supercrystal", "instrument": "APS-2IDE-XFM", **request}
    return await loop.client.post(
        "/v1/refine",
        files={"experiment": ("e.h5", experiment, "application/x-hdf5")},
        data={"request": json.dumps(body)},
        headers=loop.headers,
    )


async def finished(loop: Loop, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
    for _ in range(int(timeout_s / 0.1)):
        got = (await loop.client.get(f"/v1/refine/{job_id}", headers=loop.headers)).json()
        if got["state"] not in ("queued", "running"):
            return dict(got)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {got}")


@pytest.mark.slow
async def test_the_oracle_letters_fix_the_fault_and_the_round_is_accepted(
    tmp_path: Path, experiment_bytes: bytes
) -> None:
    fakes = Fakes(letters=["K"])
    async with running(tmp_path, fakes) as loop:
        answer = await submit(loop, experiment_bytes, max_rounds=1)
        assert answer.status_code == 202, answer.text
        assert answer.headers["Location"] == f"/v1/refine/{answer.json()['id']}"
        job = await finished(loop, answer.json()["id"])
        assert job["state"] == "done", job
        (first,) = job["rounds"]
        assert first["outcome"] == "accepted"
        assert job["outcome"] == "max-rounds"
        assert first["options_diff"]["num_epochs"] == [3, 60]
        assert first["verdict"]["loss_change"] < 0
        assert first["loss_after"] < first["loss_before"]
        assert first["image_before_sha256"] != first["image_after_sha256"]
        for name in ("recommend_id", "diagnose_before_id", "diagnose_after_id"):
            assert first[name]
        assert first["provenance"]["agent"]["adapter"] == "oracle"
        assert fakes.asked[0]["sample"]["parameters"]["iterations"] == "3"
        # the images are the gateway's, once by SHA-256, and served for the review page
        png = await loop.client.get(
            f"/v1/refine/{job['id']}/rounds/1/after.png", headers=loop.headers
        )
        assert png.status_code == 200
        assert hashlib.sha256(png.content).hexdigest() == first["image_after_sha256"]
        # an expert confirms the round: stored and counted
        review = await loop.client.post(
            f"/v1/refine/{job['id']}/rounds/1/review",
            json={"verdict": "confirm", "comment": "sharper"},
            headers=loop.headers,
        )
        assert review.status_code == 200, review.text
        assert review.json()["agrees"]
        metrics = (await loop.client.get("/metrics")).text
        assert (
            'ptycho_gateway_refine_rounds_total{adapter="oracle",outcome="accepted"} 1.0' in metrics
        )
        assert 'verdict="confirm"} 1.0' in metrics
        assert 'ptycho_gateway_refine_jobs_total{state="done"} 1.0' in metrics


@pytest.mark.slow
async def test_a_harmful_change_is_rejected_and_the_loop_stops(
    tmp_path: Path, experiment_bytes: bytes
) -> None:
    fakes = Fakes(letters=["Q"])  # transposed patterns: the data no longer fit the scan
    async with running(tmp_path, fakes) as loop:
        answer = await submit(loop, experiment_bytes, max_rounds=3)
        job = await finished(loop, answer.json()["id"])
        assert job["state"] == "done", job
        assert job["outcome"] == "rejected"
        (only,) = job["rounds"]
        assert only["outcome"] == "rejected"
        assert only["preprocess_after"] == ["transpose"]
        assert not only["verdict"]["accepted"]
        assert only["verdict"]["reasons"]


async def test_a_bad_experiment_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    async with running(tmp_path, Fakes(letters=["K"])) as loop:
        answer = await submit(loop, b"not an hdf5 file" * 10)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        both = await loop.client.post(
            "/v1/refine",
            json={"sample_type": "x", "instrument": "y"},
            headers=loop.headers,
        )
        assert both.status_code == 422
        outside = await loop.client.post(
            "/v1/refine",
            json={"sample_type": "x", "instrument": "y", "experiment_path": "/etc/passwd"},
            headers=loop.headers,
        )
        assert outside.status_code == 422
        for url, table in ((loop.database, RefineJobRow), (loop.recon_database, JobRow)):
            engine = make_engine(url)
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(table)) == 0
            engine.dispose()
        assert not any((tmp_path / "refine").glob("*"))


@pytest.mark.slow
async def test_a_job_the_gateway_died_under_resumes_or_is_marked_interrupted(
    tmp_path: Path, experiment_bytes: bytes
) -> None:
    # two jobs left "running" by a gateway that was killed: one started once (resumed),
    # one started as often as allowed (interrupted, never silently lost)
    settings = settings_for(tmp_path)
    engine = make_engine(settings.database_url)
    store = RefineStore(engine)
    from services.common.database import migrate

    migrate(engine)
    for job_id, attempts in (("a" * 32, 1), ("b" * 32, 2)):
        folder = tmp_path / "refine" / job_id
        folder.mkdir(parents=True)
        (folder / "experiment.h5").write_bytes(experiment_bytes)
        store.add(
            job_id,
            api_key_id=None,
            sample_type="Supercrystal",
            instrument="APS-2IDE-XFM",
            request={"sample_type": "Supercrystal", "instrument": "APS-2IDE-XFM", "max_rounds": 1},
            experiment_path=str(folder / "experiment.h5"),
            experiment_sha256="0" * 64,
            max_rounds=1,
        )
        for _ in range(attempts):
            store._update(job_id, None, state="queued")
            assert store.start(job_id)
    engine.dispose()
    async with running(tmp_path, Fakes(letters=["L"])) as loop:
        resumed = await finished(loop, "a" * 32)
        assert resumed["state"] == "done", resumed
        assert resumed["outcome"] == "unchanged"
        assert resumed["attempts"] == 2
        assert resumed["rounds"][0]["outcome"] == "unchanged"
        interrupted = await finished(loop, "b" * 32)
        assert interrupted["state"] == "interrupted"
        assert "not resumed" in interrupted["error"]
