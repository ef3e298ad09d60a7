"""The reconstructor in-process (httpx ASGITransport) over a real SQLite database, with
real Pty-chi reconstructions of an experiment exported from the committed
PtychoBench-Sim (128² object, 49 positions, 2 epochs where a job must finish)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest

from ptychobench.experiment_io import read_reconstruction, write_experiment
from ptychobench.quality import NO_REFERENCE_METRICS
from ptychobench.sim.export import export_experiment
from services.common.database import make_engine
from services.reconstructor.app import create_app
from services.reconstructor.settings import ReconstructorSettings
from services.reconstructor.store import JobStore

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
SAMPLE = "671e15ce"
needs_ptychi = pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed")


@pytest.fixture(scope="module")
def experiment_bytes() -> bytes:
    buffer = io.BytesIO()
    write_experiment(buffer, export_experiment(DATASET, SAMPLE))
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> ReconstructorSettings:
    (tmp_path / "shared").mkdir()
    return ReconstructorSettings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        data_dir=tmp_path / "data",
        allowed_root=tmp_path / "shared",
        device="cpu",
        progress_interval_s=0,
    )


@asynccontextmanager
async def running(settings: ReconstructorSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        yield client


def _multipart(experiment: bytes, **request: Any) -> dict[str, Any]:
    return {
        "files": {"experiment": ("e.h5", experiment, "application/x-hdf5")},
        "data": {"request": json.dumps(request)},
    }


async def _wait(
    client: httpx.AsyncClient, job_id: str, until: Callable[[dict[str, Any]], bool], limit: float
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


def _finished(job: dict[str, Any]) -> bool:
    return job["state"] in ("done", "failed", "cancelled", "interrupted")


def _jobs(settings: ReconstructorSettings) -> int:
    engine = make_engine(settings.database_url)
    try:
        return sum(JobStore(engine).count(s) for s in ("queued", "running", "done", "failed"))
    finally:
        engine.dispose()


@pytest.mark.slow
@needs_ptychi
async def test_an_uploaded_experiment_is_reconstructed(
    settings: ReconstructorSettings, experiment_bytes: bytes
) -> None:
    async with running(settings) as client:
        submitted = await client.post(
            "/v1/jobs", **_multipart(experiment_bytes, options={"num_epochs": 2}, name="halo")
        )
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["state"] in ("queued", "running")
        assert job["progress"] == {"epochs_done": 0, "epochs_total": 2}
        assert job["name"] == "halo"
        job = await _wait(client, job["id"], _finished, 120)
        assert job["state"] == "done", job
        assert job["progress"] == {"epochs_done": 2, "epochs_total": 2}
        assert job["attempts"] == 1

        result = (await client.get(job["links"]["result"])).json()
        assert len(result["losses"]) == 2
        assert result["final_loss"] == result["losses"][-1]
        assert all(np.isfinite(result["losses"]))
        assert tuple(result["metrics"]) == NO_REFERENCE_METRICS
        assert result["options"]["num_epochs"] == 2
        assert result["options"]["n_probe_modes"] == 2  # the experiment's own options
        assert result["device"] == "cpu"
        assert result["object_shape"] == [128, 128]
        assert result["experiment"]["sample_type"] == "Liquid-metal particles"

        image = await client.get(job["links"]["image"])
        assert image.headers["content-type"] == "image/png"
        from PIL import Image

        with Image.open(io.BytesIO(image.content)) as png:
            assert png.size == (128, 128)
            assert png.mode == "L"
        h5 = await client.get(job["links"]["reconstruction"])
        assert h5.status_code == 200
        back = read_reconstruction(io.BytesIO(h5.content))
        assert back.object.shape == (1, 128, 128)
        assert back.losses == tuple(result["losses"])

        shared = Path(settings.allowed_root or ".") / "sim" / "e.h5"
        shared.parent.mkdir()
        shared.write_bytes(experiment_bytes)
        by_path = await client.post(
            "/v1/jobs",
            json={"experiment_path": "sim/e.h5", "options": {"num_epochs": 1}, "preprocess": []},
        )
        assert by_path.status_code == 202, by_path.text
        second = await _wait(client, by_path.json()["id"], _finished, 60)
        assert second["state"] == "done", second
        assert (await client.get(second["links"]["result"])).json()["preprocess"] == []

        metrics = (await client.get("/metrics")).text
        assert 'ptycho_reconstructor_jobs_total{state="done"} 2.0' in metrics
        assert 'ptycho_reconstructor_jobs_total{state="failed"} 0.0' in metrics
        assert 'ptycho_reconstructor_job_seconds_count{state="done"} 2.0' in metrics
        assert "ptycho_reconstructor_queue_depth 0.0" in metrics
        assert (await client.get("/readyz")).status_code == 200


def _nan_patterns(experiment: bytes) -> bytes:
    buffer = io.BytesIO(experiment)
    with h5py.File(buffer, "a") as h5:
        h5["dp"][0, 0, 0] = np.nan
    return buffer.getvalue()


async def test_a_bad_experiment_is_refused_and_nothing_is_queued(
    settings: ReconstructorSettings, experiment_bytes: bytes
) -> None:
    async with running(settings) as client:
        cases = [
            (_multipart(_nan_patterns(experiment_bytes)), 422, "dp"),
            (_multipart(b"not an HDF5 file"), 422, "file"),
            (_multipart(experiment_bytes, options={"num_epochs": 0}), 422, None),
            (_multipart(experiment_bytes, options={"epochs": 3}), 422, None),
            (_multipart(experiment_bytes, options={"n_probe_modes": 99}), 422, None),
            ({"json": {"experiment_path": "../../etc/passwd"}}, 403, None),
            ({"json": {"experiment_path": "missing.h5"}}, 422, None),
            ({"json": {}}, 422, None),
            ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, None),
        ]
        for kwargs, status, field in cases:
            response = await client.post("/v1/jobs", **kwargs)
            assert response.status_code == status, (kwargs.keys(), response.text)
            assert response.headers["content-type"] == "application/problem+json"
            if field is not None:
                assert response.json()["field"] == field
                assert response.json()["detail"].startswith(
                    f"the experiment is not valid: {field}:"
                )
        nan = await client.post("/v1/jobs", **_multipart(_nan_patterns(experiment_bytes)))
        assert "NaN" in nan.json()["detail"]
        too_many = await client.post(
            "/v1/jobs", **_multipart(experiment_bytes, options={"num_epochs": 10**6})
        )
        assert too_many.status_code == 422
        assert "limit" in too_many.json()["detail"]
    assert _jobs(settings) == 0
    jobs_dir = Path(settings.data_dir) / "jobs"
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())


async def test_server_side_paths_need_an_allowed_root(
    settings: ReconstructorSettings, experiment_bytes: bytes
) -> None:
    outside = Path(settings.data_dir).parent / "outside.h5"
    outside.write_bytes(experiment_bytes)
    closed = settings.model_copy(update={"allowed_root": None})
    async with running(closed) as client:
        response = await client.post("/v1/jobs", json={"experiment_path": str(outside)})
        assert response.status_code == 403
        assert "RECONSTRUCTOR_ALLOWED_ROOT" in response.json()["detail"]
    async with running(settings) as client:
        response = await client.post("/v1/jobs", json={"experiment_path": str(outside)})
        assert response.status_code == 403
        assert "outside the allowed root" in response.json()["detail"]
        both = await client.post("/v1/jobs", **_multipart(experiment_bytes, experiment_path="e.h5"))
        assert both.status_code == 422
        unknown = await client.get("/v1/jobs/nope")
        assert unknown.status_code == 404
        assert unknown.json()["title"] == "Not found"
    assert _jobs(settings) == 0


def _store(settings: ReconstructorSettings) -> JobStore:
    store = JobStore(make_engine(settings.database_url))
    store.create_schema()
    return store


@pytest.mark.slow
@needs_ptychi
async def test_a_job_killed_mid_run_is_queued_again_or_marked_interrupted(
    settings: ReconstructorSettings, experiment_bytes: bytes
) -> None:
    """Rows left 'running' by a service that died: started once → run again; started
    max_attempts times → interrupted, with a reason, never silently lost."""
    path = Path(settings.allowed_root or ".") / "e.h5"
    path.write_bytes(experiment_bytes)
    store = _store(settings)
    request = {"options": {"num_epochs": 2}, "preprocess": None, "name": ""}
    store.add("once", "", request, str(path), False, 2)
    assert store.claim("once") is not None  # the service died during its first run
    store.add("twice", "", request, str(path), False, 2)
    store.claim("twice")
    store.requeue("twice", count_attempt=True)
    assert store.claim("twice") is not None  # … and during its second
    store.engine.dispose()
    async with running(settings) as client:
        twice = (await client.get("/v1/jobs/twice")).json()
        assert twice["state"] == "interrupted"
        assert "not started again" in twice["error"]
        once = await _wait(client, "once", _finished, 120)
        assert once["state"] == "done", once
        assert once["attempts"] == 2
        metrics = (await client.get("/metrics")).text
        assert 'ptycho_reconstructor_jobs_total{state="interrupted"} 1.0' in metrics


@pytest.mark.slow
@needs_ptychi
async def test_cancel_and_a_full_queue(
    settings: ReconstructorSettings, experiment_bytes: bytes
) -> None:
    limited = settings.model_copy(update={"max_queued": 1})
    async with running(limited) as client:
        long = (
            await client.post(
                "/v1/jobs", **_multipart(experiment_bytes, options={"num_epochs": 400})
            )
        ).json()
        await _wait(client, long["id"], lambda j: j["progress"]["epochs_done"] >= 1, 120)
        waiting = await client.post("/v1/jobs", **_multipart(experiment_bytes))
        assert waiting.status_code == 202
        assert waiting.json()["state"] == "queued"
        assert "ptycho_reconstructor_queue_depth 1.0" in (await client.get("/metrics")).text
        full = await client.post("/v1/jobs", **_multipart(experiment_bytes))
        assert full.status_code == 503
        assert full.json()["title"] == "Queue full"
        assert "1 jobs are waiting" in full.json()["detail"]
        assert int(full.headers["retry-after"]) > 0

        cancelled = await client.delete(f"/v1/jobs/{waiting.json()['id']}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        stopping = await client.delete(f"/v1/jobs/{long['id']}")
        assert stopping.status_code == 202
        assert stopping.json()["cancel_requested"] is True
        stopped = await _wait(client, long["id"], _finished, 60)
        assert stopped["state"] == "cancelled"
        assert 1 <= stopped["progress"]["epochs_done"] < 400
        assert "cancelled after" in stopped["error"]
        again = await client.delete(f"/v1/jobs/{long['id']}")
        assert again.status_code == 409
        no_result = await client.get(f"/v1/jobs/{long['id']}/result")
        assert no_result.status_code == 409
        assert no_result.json()["state"] == "cancelled"
        metrics = (await client.get("/metrics")).text
        assert 'ptycho_reconstructor_jobs_total{state="cancelled"} 2.0' in metrics
        assert "ptycho_reconstructor_queue_depth 0.0" in metrics
