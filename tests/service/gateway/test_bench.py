"""The benchmark runner through the in-process gateway in front of the real diagnosis
service (its classifier): plan, run, resume without sending an item twice, abort on a
configuration error, and the same run started over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bench.config import BenchConfigError, load_config, parse_config, plan
from gateway.bench.records import ItemResult
from gateway.bench.runner import BenchAbortError, run_benchmark
from gateway.bench.store import RunStore
from ptychoagent.bench import HttpPredictor
from ptychoagent.client import AsyncClient
from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS
from ptychobench.metrics import score
from services.common.database import make_engine

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
CLASSIFIER_RUN = {
    "name": "classifier-smoke",
    "dataset": str(DATASET),
    "tasks": ["detection"],
    "models": {"detection": [{"name": "classifier", "backend": "classifier"}]},
    "limit": 6,
    "concurrency": 3,
}


def test_a_configuration_is_read_checked_and_hashed_by_what_changes_answers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("tasks: [recommendation]\nk: [3, 0, 1, 3]\nseeds: [0, 1]\nlimit: 2\n")
    config = load_config(path)
    assert config.k == (0, 1, 3)
    assert config.hash() == config.model_copy(update={"concurrency": 64, "name": "x"}).hash()
    assert config.hash() != config.model_copy(update={"seeds": (0,)}).hash()
    items = plan(config.model_copy(update={"dataset": str(DATASET)}))
    # two models × (k = 0 once, and 2 strategies × 2 seeds × k in 1, 3) × 2 samples
    assert len(items) == 2 * (1 + 2 * 2 * 2) * 2
    assert len({item.key for item in items}) == len(items)
    zero = [item for item in items if item.k == 0]
    assert {item.strategy for item in zero} == {"none"}
    for text, says in [
        ("k: [0, 99]", "k: Value error, k values must be between 0 and 16"),
        ("colour: red", "colour: Extra inputs are not permitted"),
        ("strategies: [best]", "strategies.0"),
        ("models: {detection: [{name: a b}]}", "models.detection.0.name"),
    ]:
        path.write_text(text)
        with pytest.raises(BenchConfigError, match=re.escape(says)):
            load_config(path)
    with pytest.raises(BenchConfigError, match="no detection split 'dev'"):
        plan(parse_config({"dataset": str(DATASET), "split": "dev"}))
    with pytest.raises(BenchConfigError, match="no benchmark configuration"):
        load_config(tmp_path / "missing.yaml")


class Interrupting:
    """A predictor that lets ``allowed`` items through, then is killed: the next item
    reaches the gateway (which answers and keeps it) but the runner dies before keeping
    it, as when the process is killed between the two."""

    def __init__(self, inner: HttpPredictor, allowed: int) -> None:
        self.inner = inner
        self.allowed = allowed
        self.run: asyncio.Task[Any] | None = None

    async def diagnose(self, options: Any, image: bytes, key: str) -> Any:
        answer = await self.inner.diagnose(options, image, key)
        self.allowed -= 1
        if self.allowed < 0:
            assert self.run is not None
            self.run.cancel()  # the kill
            await asyncio.sleep(3600)
        return answer

    async def recommend(self, request: Any, key: str) -> Any:
        raise AssertionError("not in this run")

    async def feedback(self, prediction_id: str, labels: list[str]) -> None:
        await self.inner.feedback(prediction_id, labels)


async def _diagnoses_answered(stack: Any) -> float:
    text = (await stack.diagnosis.get("/metrics")).text
    found = re.search(
        r'ptycho_diagnosis_requests_total\{method="POST",route="/v1/diagnose",status="200"\} (\S+)',
        text,
    )
    return float(found.group(1)) if found else 0.0


async def test_a_killed_run_resumes_and_no_item_is_computed_twice(stack: Any, apps: Any) -> None:
    config = parse_config({**CLASSIFIER_RUN, "concurrency": 1})
    runs = RunStore(make_engine(apps.database))
    transport = httpx.ASGITransport(app=stack.app)
    async with AsyncClient("http://gateway", stack.keys["predict"], transport=transport) as client:
        killed = Interrupting(HttpPredictor(client), allowed=3)
        killed.run = asyncio.create_task(run_benchmark(config, runs, killed, gateway_url="test"))
        with pytest.raises(asyncio.CancelledError):
            await killed.run
        (stopped,) = runs.list()
        assert (stopped.status, stopped.done, stopped.total) == ("interrupted", 3, 6)
        assert await _diagnoses_answered(stack) == 4  # the 4th was answered, then lost

        run = await run_benchmark(config, runs, HttpPredictor(client), gateway_url="test")
    assert (run.id, run.status, run.done, run.failed) == (stopped.id, "finished", 6, 0)
    assert await _diagnoses_answered(stack) == 6  # the lost answer was replayed, not redone
    items = runs.items(run.id)
    truth = {s.id: s.artifacts for s in read_release(DATASET).samples("detection", "test")}
    assert all(item.truth == truth[item.sample_id] for item in items)
    assert {item.strategy for item in items} == {"none"}
    listed = await stack.gateway.get("/v1/predictions", headers=stack.auth("predict"))
    assert len(listed.json()) == 6  # one stored prediction per item


async def test_feedback_runs_make_live_f1_equal_to_the_benchmarks(stack: Any, apps: Any) -> None:
    from gateway.keys import KeyStore

    token = KeyStore(make_engine(apps.database)).create("bench", ["predict", "feedback"])[1]
    config = parse_config({**CLASSIFIER_RUN, "feedback": True})
    runs = RunStore(make_engine(apps.database))
    transport = httpx.ASGITransport(app=stack.app)
    async with AsyncClient("http://gateway", token, transport=transport) as client:
        run = await run_benchmark(config, runs, HttpPredictor(client), gateway_url="test")
    items: list[ItemResult] = runs.items(run.id)
    expected = score(
        [i.truth for i in items], [i.predicted for i in items], ARTIFACT_LABELS
    ).micro.f1
    live = (await stack.gateway.get("/v1/live-f1", headers=stack.auth("predict"))).json()
    (only,) = live["scores"]
    assert only["reviewed"] == 6
    assert only["micro_f1"] == pytest.approx(expected)


async def test_a_request_the_gateway_refuses_stops_the_run_with_the_reason(
    stack: Any, apps: Any
) -> None:
    # semantic examples need the retriever, which this diagnosis service does not have
    config = parse_config(
        {
            **CLASSIFIER_RUN,
            "models": {"detection": [{"name": "vlm", "backend": "vlm"}]},
            "strategies": ["semantic"],
            "k": [1],
        }
    )
    runs = RunStore(make_engine(apps.database))
    transport = httpx.ASGITransport(app=stack.app)
    async with AsyncClient("http://gateway", stack.keys["predict"], transport=transport) as client:
        with pytest.raises(BenchAbortError, match="needs the retriever"):
            await run_benchmark(config, runs, HttpPredictor(client), gateway_url="test")
    (run,) = runs.list()
    assert run.status == "failed"
    assert "needs the retriever" in run.message


async def test_a_run_started_over_http_reports_when_done(stack: Any) -> None:
    admin = stack.auth("admin")
    refused = await stack.gateway.post(
        "/v1/benchmarks", json=CLASSIFIER_RUN, headers=stack.auth("predict")
    )
    assert refused.status_code == 403
    bad = await stack.gateway.post("/v1/benchmarks", json={"k": [99]}, headers=admin)
    assert bad.status_code == 422
    started = await stack.gateway.post("/v1/benchmarks", json=CLASSIFIER_RUN, headers=admin)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    for _ in range(600):
        run = (await stack.gateway.get(f"/v1/benchmarks/{run_id}", headers=admin)).json()
        if run["status"] != "running" and run["report"]:
            break
        await asyncio.sleep(0.05)
    assert run["status"] == "finished", run
    assert (run["done"], run["total"]) == (6, 6)
    assert 0 <= run["micro_f1"]["detection"] <= 1
    report = await stack.gateway.get(f"/v1/benchmarks/{run_id}/report.json", headers=admin)
    assert report.status_code == 200
    assert json.loads(report.content)["run"]["run_id"] == run_id
    png = await stack.gateway.get(f"/v1/benchmarks/{run_id}/f1_vs_k.png", headers=admin)
    assert png.content.startswith(b"\x89PNG")
    missing = await stack.gateway.get(f"/v1/benchmarks/{run_id}/secrets.txt", headers=admin)
    assert missing.status_code == 404
    metrics = (await stack.gateway.get("/metrics")).text
    series = (
        f'ptycho_gateway_benchmark_items{{name="classifier-smoke",run="{run_id}",state="done"}} 6.0'
    )
    assert series in metrics
    listed = await stack.gateway.get("/v1/benchmarks", headers=stack.auth("feedback"))
    assert [r["id"] for r in listed.json()] == [run_id]


async def _finished(stack: Any, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = {}
    for _ in range(600):
        run = (
            await stack.gateway.get(f"/v1/benchmarks/{run_id}", headers=stack.auth("admin"))
        ).json()
        if run["status"] != "running" and run["report"]:
            break
        await asyncio.sleep(0.05)
    return run


async def test_a_run_records_what_made_it_and_is_not_resumed_once_that_changed(
    stack: Any, apps: Any
) -> None:
    from sqlalchemy.orm import Session

    from gateway.bench.store import RunRow
    from ptychobench.prompts import PROMPT_VERSION

    admin = stack.auth("admin")
    config = {**CLASSIFIER_RUN, "name": "made-with", "limit": 2}
    started = await stack.gateway.post("/v1/benchmarks", json=config, headers=admin)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    assert (await _finished(stack, run_id))["status"] == "finished"
    engine = make_engine(apps.database)
    runs = RunStore(engine)
    made_with = runs.get(run_id).provenance
    assert made_with is not None
    assert made_with["prompt"]["version"] == PROMPT_VERSION
    assert made_with["dataset"]["sha256"]
    assert made_with["packages"]["python"]
    (model,) = made_with["models"]  # the engine as the diagnosis service says (GET /info)
    assert model["engine_url"]
    assert model["adapter"] is None
    assert {item.prompt_sha256 for item in runs.items(run_id)} == {made_with["prompt"]["sha256"]}
    report = await stack.gateway.get(f"/v1/benchmarks/{run_id}/report.json", headers=admin)
    assert json.loads(report.content)["run"]["provenance"] == made_with

    with Session(engine) as session, session.begin():  # the data set changes under the name
        row = session.get(RunRow, run_id)
        assert row is not None
        row.provenance = {**made_with, "dataset": {"path": "x", "sha256": "0" * 64}}
    refused = await stack.gateway.post("/v1/benchmarks", json=config, headers=admin)
    assert refused.status_code == 409, refused.text
    assert "dataset changed" in refused.json()["detail"]
    fresh = await stack.gateway.post("/v1/benchmarks?restart=true", json=config, headers=admin)
    assert fresh.status_code == 202, fresh.text
    assert fresh.json()["id"] != run_id
    assert (await _finished(stack, fresh.json()["id"]))["status"] == "finished"
    engine.dispose()
