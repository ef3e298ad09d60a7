"""The retriever in-process over a real SQLite database holding PtychoBench-Sim, with the
real MiniLM embeddings for the semantic strategy."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release
from ptychobench.labels import Task
from ptychobench.selection import select_examples
from services.common.database import make_engine
from services.retriever.app import create_app
from services.retriever.ingest import ingest
from services.retriever.settings import RetrieverSettings
from services.retriever.store import ExampleStore

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('retriever') / 'examples.db'}"
    engine = make_engine(url)
    ingest(ExampleStore(engine), DATASET)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(database: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(RetrieverSettings(database_url=database, refresh_s=0))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        yield client


async def _select(client: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    response = await client.post("/v1/examples/select", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["examples"])


@pytest.mark.parametrize("strategy", ["ssfs", "rfs"])
@pytest.mark.parametrize("task", list(Task))
async def test_selection_is_exactly_ptychobenchs(
    client: httpx.AsyncClient, task: Task, strategy: str
) -> None:
    dataset = read_release(DATASET)
    train = dataset.samples(task, "train")
    queries = [*dataset.samples(task, "test")[:4], *train[:2]]  # unseen ones and pool members
    for query in queries:
        got = await _select(
            client,
            task=task.value,
            query={"sample_type": query.sample_type, "id": query.id},
            k=5,
            strategy=strategy,
            seed=7,
            images=False,
        )
        assert [e["id"] for e in got] == [
            s.id for s in select_examples(query, train, 5, strategy, 7)
        ]
        assert query.id not in [e["id"] for e in got]


async def test_detection_examples_carry_their_images_and_answers(
    client: httpx.AsyncClient,
) -> None:
    got = await _select(
        client, task="detection", query={"sample_type": "Siemens star"}, k=2, strategy="ssfs"
    )
    samples = {s.id: s for s in read_release(DATASET).samples(Task.DETECTION, "train")}
    for example in got:
        sample = samples[example["id"]]
        assert sample.image is not None
        assert base64.b64decode(example["image_base64"]) == sample.image.read_bytes()
        assert example["answer"].startswith("<answer>[")
        assert example["artifacts"] == list(sample.artifacts)
        assert example["sample_type"] == "Siemens star"
    plain = await _select(client, task="recommendation", query={"sample_type": "x"}, k=1)
    assert plain[0]["image_base64"] is None


async def test_semantic_finds_the_nearest_sample_type_deterministically_and_nested(
    client: httpx.AsyncClient,
) -> None:
    query = {"sample_type": "integrated chip", "description": "circuit wiring"}
    five = await _select(client, task="detection", query=query, k=5, strategy="semantic")
    again = await _select(client, task="detection", query=query, k=5, strategy="semantic")
    three = await _select(client, task="detection", query=query, k=3, strategy="semantic")
    assert [e["id"] for e in five] == [e["id"] for e in again]
    assert [e["id"] for e in three] == [e["id"] for e in five][:3]
    assert {e["sample_type"] for e in five} == {"Integrated circuit"}
    other_seed = await _select(
        client, task="detection", query=query, k=5, strategy="semantic", seed=1
    )
    assert {e["sample_type"] for e in other_seed} == {"Integrated circuit"}
    member = five[0]
    mine = await _select(
        client,
        task="detection",
        query={
            "sample_type": member["sample_type"],
            "id": member["id"],
            "description": member["description"],
        },
        k=5,
        strategy="semantic",
    )
    assert member["id"] not in [e["id"] for e in mine]


async def test_an_added_example_joins_the_pool_and_the_semantic_index(
    client: httpx.AsyncClient, make_png: Any
) -> None:
    example = {
        "task": "detection",
        "id": "feedback-1",
        "sample_type": "Zeolite crystal",
        "description": "Zeolite crystal with a strong phase ramp",
        "artifacts": ["Phase ramp"],
        "image_base64": base64.b64encode(make_png(seed=3)).decode(),
    }
    created = await client.post("/v1/examples", json=example)
    assert created.status_code == 201, created.text
    assert (await client.post("/v1/examples", json=example)).status_code == 200  # replaced
    got = await _select(
        client,
        task="detection",
        query={"sample_type": "Zeolite crystal", "description": "ramp"},
        k=1,
        strategy="semantic",
    )
    assert got[0]["id"] == "feedback-1"
    assert got[0]["source"] == "feedback"
    ssfs = await _select(
        client, task="detection", query={"sample_type": "Zeolite crystal"}, k=1, strategy="ssfs"
    )
    assert ssfs[0]["id"] == "feedback-1"
    counts = (await client.get("/v1/examples/stats")).json()["counts"]
    assert {"task": "detection", "split": "train", "source": "feedback", "count": 1} in counts


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"task": "segmentation", "query": {"sample_type": "x"}, "k": 1}, 422, "body.task"),
        ({"task": "detection", "query": {"sample_type": "x"}, "k": 17}, 422, "above this service"),
        ({"task": "detection", "query": {"sample_type": ""}, "k": 1}, 422, "sample_type"),
        (
            {"task": "detection", "query": {"sample_type": "x"}, "k": 1, "strategy": "best"},
            422,
            "strategy",
        ),
        ({"task": "detection", "query": {"sample_type": "x"}, "k": 1, "colour": 1}, 422, "colour"),
    ],
)
async def test_bad_selections_are_refused_with_problem_json(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await client.post("/v1/examples/select", json=body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"image_base64": None}, 422, "needs its image"),
        ({"image_base64": "not base64!"}, 422, "not valid base64"),
        ({"image_base64": base64.b64encode(b"plain text").decode()}, 415, "not PNG"),
        ({"artifacts": ["Rainbows"]}, 422, "unknown artifact label"),
        ({"task": "recommendation", "options": ["Z"]}, 422, "unknown option letter"),
        ({"id": "has spaces"}, 422, "body.id"),
    ],
)
async def test_bad_examples_are_refused(
    client: httpx.AsyncClient, make_png: Any, change: dict[str, Any], status: int, detail: str
) -> None:
    body = {
        "task": "detection",
        "id": "bad",
        "sample_type": "x",
        "image_base64": base64.b64encode(make_png()).decode(),
        **change,
    }
    response = await client.post("/v1/examples", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def test_an_empty_pool_is_a_clear_422_and_readiness_follows_the_database(
    tmp_path: Path,
) -> None:
    app = create_app(
        RetrieverSettings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", semantic=False)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        response = await client.post(
            "/v1/examples/select", json={"task": "detection", "query": {"sample_type": "x"}, "k": 1}
        )
        assert response.status_code == 422
        assert "ingest a dataset first" in response.json()["detail"]
        zero = await client.post(
            "/v1/examples/select", json={"task": "detection", "query": {"sample_type": "x"}, "k": 0}
        )
        assert zero.json()["examples"] == []
        semantic = await client.post(
            "/v1/examples/select",
            json={
                "task": "detection",
                "query": {"sample_type": "x"},
                "k": 0,
                "strategy": "semantic",
            },
        )
        assert semantic.status_code == 422
        assert (await client.get("/readyz")).status_code == 200

    down = create_app(RetrieverSettings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=down), base_url="http://r"
    ) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["detail"]
