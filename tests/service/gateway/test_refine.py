"""The closed loop at the gateway, in-process: the gateway's ``/v1/refine`` against a
real reconstructor app (real Pty-chi on an experiment exported from the committed
PtychoBench-Sim, 45 positions, a 3-epoch start), with fake diagnosis and agent services
that answer the sample's truth (the point here is the loop, not the models)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.refine.store import RefineJobRow, RefineStore
from services.common.database import make_engine
from services.reconstructor.store import JobRow

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed"),
]
RefineApps = Any  # conftest.RefineApps
Fakes = Any  # conftest.Fakes


@dataclass
class Loop:
    client: httpx.AsyncClient
    headers: dict[str, str]
    gateway: FastAPI
    database: str
    recon_database: str


@asynccontextmanager
async def running(apps: RefineApps, asgi: Callable[..., Any]) -> AsyncIterator[Loop]:
    gateway = apps.gateway()
    async with (
        apps.reconstructor.router.lifespan_context(apps.reconstructor),
        asgi(gateway, "gateway") as client,
    ):
        headers = {"Authorization": f"Bearer {apps.key()}"}
        yield Loop(client, headers, gateway, apps.settings.database_url, apps.recon_database)


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
    refine_apps: RefineApps, fakes: Fakes, experiment_bytes: bytes, asgi: Callable[..., Any]
) -> None:
    fakes.letters = ["K"]
    async with running(refine_apps, asgi) as loop:
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
    refine_apps: RefineApps, fakes: Fakes, experiment_bytes: bytes, asgi: Callable[..., Any]
) -> None:
    fakes.letters = ["Q"]  # transposed patterns: the data no longer fit the scan
    async with running(refine_apps, asgi) as loop:
        answer = await submit(loop, experiment_bytes, max_rounds=3)
        job = await finished(loop, answer.json()["id"])
        assert job["state"] == "done", job
        assert job["outcome"] == "rejected"
        (only,) = job["rounds"]
        assert only["outcome"] == "rejected"
        assert only["preprocess_after"] == ["transpose"]
        assert not only["verdict"]["accepted"]
        assert only["verdict"]["reasons"]


async def test_a_bad_experiment_is_refused_and_nothing_is_queued(
    tmp_path: Path, refine_apps: RefineApps, experiment_bytes: bytes, asgi: Callable[..., Any]
) -> None:
    async with running(refine_apps, asgi) as loop:
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
        for image in ("\udbfe\udf99|", "é===", "abc"):  # non-ASCII, outside the alphabet, unpadded
            bad_image = await submit(loop, experiment_bytes, image_base64=image)
            assert bad_image.status_code == 422, bad_image.text
            assert "image_base64 is not valid base64" in bad_image.json()["detail"]
        for url, table in ((loop.database, RefineJobRow), (loop.recon_database, JobRow)):
            engine = make_engine(url)
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(table)) == 0
            engine.dispose()
        assert not any((tmp_path / "refine").glob("*"))


@pytest.mark.slow
async def test_a_job_the_gateway_died_under_resumes_or_is_marked_interrupted(
    tmp_path: Path,
    refine_apps: RefineApps,
    fakes: Fakes,
    experiment_bytes: bytes,
    asgi: Callable[..., Any],
) -> None:
    # two jobs left "running" by a gateway that was killed: one started once (resumed),
    # one started as often as allowed (interrupted, never silently lost)
    engine = make_engine(refine_apps.settings.database_url)
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
    fakes.letters = ["L"]
    async with running(refine_apps, asgi) as loop:
        resumed = await finished(loop, "a" * 32)
        assert resumed["state"] == "done", resumed
        assert resumed["outcome"] == "unchanged"
        assert resumed["attempts"] == 2
        assert resumed["rounds"][0]["outcome"] == "unchanged"
        interrupted = await finished(loop, "b" * 32)
        assert interrupted["state"] == "interrupted"
        assert "not resumed" in interrupted["error"]
