"""Every field bounded and clean in its schema: out-of-range seeds, NUL bytes in any
string (bodies, query filters, the review page's filters, a benchmark's dataset) and
malformed benchmark configurations are 422 problems, never 500s; benchmark names are
slugs and datasets come from the configured roots. On SQLite and on PostgreSQL (whose
int4 columns and text fields refuse what SQLite keeps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
Stack = Any  # conftest.Stack
SEEDS = [2**31, 2**63, -1]
NUL = "Siemens\x00star"
RUN = {
    "name": "tiny",
    "dataset": str(DATASET),
    "tasks": ["detection"],
    "models": {"detection": [{"name": "classifier", "backend": "classifier"}]},
    "limit": 1,
}


def _sample() -> Any:
    return read_release(DATASET).samples("detection", "test")[0]


def _upload(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "files": {"image": ("r.png", _sample().image.read_bytes(), "image/png")},
        "data": {"request": json.dumps(options)},
    }


def _refused(response: httpx.Response, *says: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    for text in says:
        assert text in response.json()["detail"]


async def test_a_seed_outside_the_columns_range_is_refused(any_stack: Stack) -> None:
    stack = any_stack
    auth = stack.auth("predict")
    sample = {"sample_type": "Siemens star", "instrument": "Velociprobe"}
    for seed in SEEDS:
        diagnose = await stack.gateway.post(
            "/v1/diagnose", headers=auth, **_upload({"sample": sample, "seed": seed})
        )
        _refused(diagnose, "seed")
        analyze = await stack.gateway.post(
            "/v1/analyze",
            headers=auth,
            **_upload({"sample": sample, "recommendation": {"seed": seed}}),
        )
        _refused(analyze, "recommendation.seed")
        recommend = await stack.gateway.post(
            "/v1/recommend",
            json={"sample": {**sample, "artifacts": ["Halo artifacts"]}, "seed": seed},
            headers=auth,
        )
        _refused(recommend, "seed")
    largest = await stack.gateway.post(
        "/v1/diagnose", headers=auth, **_upload({"sample": sample, "seed": 2**31 - 1})
    )
    assert largest.status_code == 200, largest.text
    listed = await stack.gateway.get("/v1/predictions", headers=auth)
    assert [p["seed"] for p in listed.json()] == [2**31 - 1]


async def test_nul_bytes_are_refused_in_every_string(any_stack: Stack) -> None:
    stack = any_stack
    predict, review, admin = (stack.auth(s) for s in ("predict", "feedback", "admin"))
    sample = {"sample_type": "Siemens star", "instrument": "Velociprobe"}
    bad_sample = await stack.gateway.post(
        "/v1/diagnose", headers=predict, **_upload({"sample": {**sample, "sample_type": NUL}})
    )
    _refused(bad_sample, "sample.sample_type", "NUL")
    bad_parameters = await stack.gateway.post(
        "/v1/recommend",
        json={"sample": {**sample, "parameters": {"num_epochs\x00": "100"}}},
        headers=predict,
    )
    _refused(bad_parameters, "sample.parameters")
    made = await stack.gateway.post("/v1/diagnose", headers=predict, **_upload({"sample": sample}))
    assert made.status_code == 200, made.text
    url = f"/v1/feedback/{made.json()['prediction_id']}"
    for body, where in [
        ({"labels": ["Halo artifacts"], "comment": "ok\x00"}, "comment"),
        ({"labels": ["Halo artifacts"], "expert": "A.\x00Expert"}, "expert"),
        ({"labels": ["Halo\x00artifacts"]}, "labels"),
    ]:
        _refused(await stack.gateway.post(url, json=body, headers=review), where)
    for name in ("sample_type", "instrument", "adapter"):
        listed = await stack.gateway.get("/v1/predictions", params={name: NUL}, headers=predict)
        _refused(listed, name)
    stack.gateway.cookies.clear()
    form = await stack.gateway.get("/ui/login")
    csrf = stack.gateway.cookies["ptycho_ui_csrf"]
    assert form.status_code == 200
    await stack.gateway.post(
        "/ui/login", data={"api_key": stack.keys["feedback"], "csrf_token": csrf}
    )
    page = await stack.gateway.get("/ui", params={"instrument": NUL})
    _refused(page, "instrument")
    run = await stack.gateway.post(
        "/v1/benchmarks", json={**RUN, "dataset": str(DATASET) + "\x00"}, headers=admin
    )
    _refused(run, "dataset")
    # nothing half-done was kept
    listed = await stack.gateway.get("/v1/predictions", headers=predict)
    assert [p["id"] for p in listed.json()] == [made.json()["prediction_id"]]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"models": {}}, "no models for the detection task"),
        ({"models": {"detection": []}}, "no models for the detection task"),
        ({"dataset": str(ROOT / "data" / "nothing-here")}, "cannot read the dataset"),
        ({"split": "dev"}, "no detection split 'dev'"),
        ({"name": ".."}, "name"),
        ({"name": "."}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "runs..x"}, "name"),
        ({"dataset": str(ROOT / "deploy")}, "not under an allowed dataset root"),
        ({"dataset": str(DATASET / ".." / ".." / "deploy")}, "not under an allowed dataset root"),
        ({"dataset": "/etc"}, "not under an allowed dataset root"),
    ],
)
async def test_a_malformed_benchmark_is_a_422_that_says_why(
    stack: Stack, change: dict[str, Any], says: str
) -> None:
    started = await stack.gateway.post(
        "/v1/benchmarks", json={**RUN, **change}, headers=stack.auth("admin")
    )
    _refused(started, says)
    assert (await stack.gateway.get("/v1/benchmarks", headers=stack.auth("admin"))).json() == []
