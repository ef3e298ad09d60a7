"""The gateway in-process, in front of the real diagnosis service (its committed
classifier) and the real retriever, both in-process too, over a real SQLite database.

The agent needs the engine, so here it is a real agent service whose engine is not
running: every recommendation is the "backend down" path. Recommendations that answer
are in tests/integration/test_gateway.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS
from ptychobench.metrics import score

pytestmark = pytest.mark.anyio
DATASET = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"
Stack = Any  # conftest.Stack: the gateway and the services' clients, and a key per scope


def _sample(index: int) -> Any:
    return read_release(DATASET).samples("detection", "test")[index]


def _options(sample: Any, **extra: Any) -> dict[str, Any]:
    return {
        "sample": {"sample_type": sample.sample_type, "instrument": sample.instrument},
        **extra,
    }


async def _diagnose(stack: Stack, index: int, **headers: str) -> httpx.Response:
    sample = _sample(index)
    return await stack.gateway.post(
        "/v1/diagnose",
        files={"image": ("r.png", sample.image.read_bytes(), "image/png")},
        data={"request": json.dumps(_options(sample))},
        headers={**stack.auth("predict"), **headers},
    )


async def _diagnose_calls(stack: Stack) -> float:
    """How many diagnoses the diagnosis service itself has answered."""
    text = (await stack.diagnosis.get("/metrics")).text
    found = re.search(
        r'ptycho_diagnosis_requests_total\{method="POST",route="/v1/diagnose",status="200"\} (\S+)',
        text,
    )
    return float(found.group(1)) if found else 0.0


async def test_a_diagnosis_is_answered_kept_with_its_provenance_and_its_image(
    stack: Stack,
) -> None:
    sample = _sample(0)
    image = sample.image.read_bytes()
    response = await _diagnose(stack, 0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["Idempotent-Replayed"] == "false"
    assert body["backend"] == "classifier"
    assert [a["label"] for a in body["artifacts"]] == body["labels"]
    assert all(label in ARTIFACT_LABELS for label in body["labels"])

    # the same image as base64 JSON gives the same answer, as another prediction
    as_json = await stack.gateway.post(
        "/v1/diagnose",
        json={"image_base64": base64.b64encode(image).decode(), **_options(sample)},
        headers=stack.auth("predict"),
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["labels"] == body["labels"]
    assert as_json.json()["prediction_id"] != body["prediction_id"]

    record = await stack.gateway.get(
        f"/v1/predictions/{body['prediction_id']}", headers=stack.auth("feedback")
    )
    assert record.status_code == 200, record.text
    kept = record.json()
    assert kept["task"] == "detection"
    assert kept["kind"] == "diagnose"
    assert [x["label"] for x in kept["labels"]] == body["labels"]
    assert kept["adapter"] == body["adapter"]
    assert kept["service_url"] == "http://diagnosis"
    assert kept["image_sha256"] == body["image"]["sha256"]
    assert kept["request"]["sample"]["sample_type"] == sample.sample_type
    assert kept["scores"] == body["scores"]
    assert kept["feedback"] == []
    assert kept["latency_s"] >= kept["backend_latency_s"]
    picture = await stack.gateway.get(
        f"/v1/predictions/{body['prediction_id']}/image", headers=stack.auth("predict")
    )
    assert picture.content == image
    assert picture.headers["content-type"] == "image/png"
    metrics = (await stack.gateway.get("/metrics")).text
    series = f'adapter="{body["adapter"]}",kind="diagnose",task="detection"'
    assert f"ptycho_gateway_predictions_total{{{series}}} 2.0" in metrics


async def test_an_idempotency_key_replays_the_answer_without_a_second_model_call(
    stack: Stack,
) -> None:
    first = await _diagnose(stack, 1, **{"Idempotency-Key": "scan-0042"})
    assert first.status_code == 200, first.text
    calls = await _diagnose_calls(stack)
    again = await _diagnose(stack, 1, **{"Idempotency-Key": "scan-0042"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await _diagnose_calls(stack) == calls  # the model was not asked again
    listed = await stack.gateway.get("/v1/predictions", headers=stack.auth("predict"))
    assert [p["id"] for p in listed.json()] == [first.json()["prediction_id"]]
    # the same key for another request is refused; another key is a new prediction
    other = await _diagnose(stack, 2, **{"Idempotency-Key": "scan-0042"})
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    fresh = await _diagnose(stack, 1, **{"Idempotency-Key": "scan-0043"})
    assert fresh.json()["prediction_id"] != first.json()["prediction_id"]


async def test_keys_and_scopes(stack: Stack) -> None:
    sample = _sample(0)
    files = {"image": ("r.png", sample.image.read_bytes(), "image/png")}
    missing = await stack.gateway.post("/v1/diagnose", files=files)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = await stack.gateway.post(
        "/v1/diagnose", files=files, headers={"X-API-Key": "pk_000000000000_" + "x" * 43}
    )
    assert wrong.status_code == 401
    for scope in ("feedback", "admin"):
        refused = await stack.gateway.post("/v1/diagnose", files=files, headers=stack.auth(scope))
        assert refused.status_code == 403
        assert "'predict'" in refused.json()["detail"]
    made = (await _diagnose(stack, 0)).json()
    refused = await stack.gateway.post(
        f"/v1/feedback/{made['prediction_id']}",
        json={"labels": ["Halo artifacts"]},
        headers=stack.auth("predict"),
    )
    assert refused.status_code == 403
    reading = await stack.gateway.get("/v1/predictions", headers=stack.auth("admin"))
    assert reading.status_code == 403


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        (
            {"content": b"labels please", "headers": {"Content-Type": "text/plain"}},
            415,
            "text/plain",
        ),
        ({"json": {"sample": {"sample_type": "x"}}}, 422, "image_base64"),
        ({"json": {"image_base64": "!!!"}}, 422, "not valid base64"),
        ({"json": {"image_base64": "aGVsbG8=", "colour": "red"}}, 422, "body.colour"),
        ({"json": {"image_base64": "aGVsbG8=", "sample": {"kind": "x"}}}, 422, "body.sample.kind"),
        ({"json": {"image_base64": "aGVsbG8="}}, 415, "not PNG"),  # the service says
        (
            {"files": {"image": ("a.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")}},
            422,
            "could not be decoded",
        ),
        ({"files": {"image": ("a.png", b"\0" * 2_000_001, "image/png")}}, 413, "2,000,000"),
        ({"json": {"image_base64": "aGVsbG8=", "adapter": "../x"}}, 422, "body.adapter"),
    ],
)
async def test_bad_uploads_are_clear_4xx_problems(
    stack: Stack, kwargs: dict[str, Any], status: int, says: str
) -> None:
    headers = {**stack.auth("predict"), **kwargs.pop("headers", {})}
    response = await stack.gateway.post("/v1/diagnose", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert says in response.json()["detail"]


async def test_feedback_counts_into_live_f1_and_a_second_review_replaces_the_first(
    stack: Stack,
) -> None:
    made = [(await _diagnose(stack, i)).json() for i in range(4)]
    truths = [list(_sample(i).artifacts) for i in range(4)]
    for answer, truth in zip(made, truths, strict=True):
        response = await stack.gateway.post(
            f"/v1/feedback/{answer['prediction_id']}",
            json={"labels": truth, "comment": "checked"},
            headers=stack.auth("feedback"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["expert"] == "feedback-key"
        assert body["replaces"] is None
        said, true = set(answer["labels"]), set(truth)
        assert set(body["outcomes"]["tp"]) == said & true
        assert set(body["outcomes"]["fp"]) == said - true
        assert set(body["outcomes"]["fn"]) == true - said
    # the expert changes their mind about the first one: everything is wrong now
    wrong = [label for label in ARTIFACT_LABELS[:-1] if label not in made[0]["labels"]][:2]
    second = await stack.gateway.post(
        f"/v1/feedback/{made[0]['prediction_id']}",
        json={"labels": wrong, "expert": "A. Expert"},
        headers=stack.auth("feedback"),
    )
    assert second.status_code == 200, second.text
    first_id = (
        await stack.gateway.get(
            f"/v1/predictions/{made[0]['prediction_id']}", headers=stack.auth("predict")
        )
    ).json()["feedback"][0]["id"]
    assert second.json()["replaces"] == first_id
    truths[0] = wrong

    expected = score(truths, [m["labels"] for m in made], ARTIFACT_LABELS).micro.f1
    live = (await stack.gateway.get("/v1/live-f1", headers=stack.auth("predict"))).json()
    (only,) = live["scores"]
    assert (only["task"], only["reviewed"]) == ("detection", 4)
    assert only["micro_f1"] == pytest.approx(expected)
    # the counters, net of retractions, give the same micro-F1 (what the rules record)
    totals = _net_outcomes((await stack.gateway.get("/metrics")).text)
    tp, fp, fn = (totals.get(o, 0.0) for o in ("tp", "fp", "fn"))
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(expected)
    unreviewed = await stack.gateway.get(
        "/v1/predictions", params={"unreviewed": "true"}, headers=stack.auth("predict")
    )
    assert unreviewed.json() == []


def _net_outcomes(metrics: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    pattern = re.compile(
        r"^ptycho_gateway_label_(outcomes|outcome_retractions)_total\{(.*)\} (\S+)$", re.M
    )
    for kind, labels, value in pattern.findall(metrics):
        outcome = re.search(r'outcome="(\w+)"', labels)
        assert outcome is not None
        sign = 1 if kind == "outcomes" else -1
        totals[outcome.group(1)] = totals.get(outcome.group(1), 0.0) + sign * float(value)
    return totals


async def test_bad_feedback_is_refused_and_counts_nothing(stack: Stack) -> None:
    made = (await _diagnose(stack, 0)).json()
    url = f"/v1/feedback/{made['prediction_id']}"
    auth = stack.auth("feedback")
    for body, status, says in [
        ({"labels": ["Halo artifacts", "Fuzzy"]}, 422, "'Fuzzy'"),
        ({"labels": ["A"]}, 422, "'A'"),  # a letter on a diagnosis
        ({"labels": []}, 422, "No obvious artifacts"),
        ({"labels": ["Halo artifacts"], "stars": 5}, 422, "body.stars"),
    ]:
        response = await stack.gateway.post(url, json=body, headers=auth)
        assert response.status_code == status, response.text
        assert says in response.json()["detail"]
    missing = await stack.gateway.post(
        "/v1/feedback/" + "0" * 32, json={"labels": ["Halo artifacts"]}, headers=auth
    )
    assert missing.status_code == 404
    # nothing counted; the series exist at 0 from the prediction on, so that a window's
    # increase() sees the first review
    totals = _net_outcomes((await stack.gateway.get("/metrics")).text)
    assert totals == {"tp": 0.0, "fp": 0.0, "fn": 0.0}


async def test_a_correction_goes_into_the_example_pool_when_asked(stack: Stack) -> None:
    made = (await _diagnose(stack, 0)).json()
    response = await stack.gateway.post(
        f"/v1/feedback/{made['prediction_id']}",
        json={"labels": ["Halo artifacts", "Blurring"], "add_to_pool": True},
        headers=stack.auth("feedback"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["added_to_pool"] is True
    stats = (await stack.retriever.get("/v1/examples/stats")).json()["counts"]
    assert {"task": "detection", "split": "train", "source": "feedback", "count": 1} in stats
    selected = await stack.retriever.post(
        "/v1/examples/select",
        json={"task": "detection", "query": {"sample_type": _sample(0).sample_type}, "k": 1},
    )
    (example,) = selected.json()["examples"]
    assert example["id"] == f"feedback-{made['prediction_id']}"
    assert example["artifacts"] == ["Halo artifacts", "Blurring"]
    assert base64.b64decode(example["image_base64"]) == _sample(0).image.read_bytes()
    kept = await stack.gateway.get(
        f"/v1/predictions/{made['prediction_id']}", headers=stack.auth("predict")
    )
    assert kept.json()["feedback"][0]["added_to_pool"] is True


async def test_a_down_agent_is_a_503_that_names_it_and_nothing_half_done_is_kept(
    stack: Stack,
) -> None:
    sample = _sample(0)
    recommend = await stack.gateway.post(
        "/v1/recommend",
        json={
            "sample": {
                "instrument": sample.instrument,
                "sample_type": sample.sample_type,
                "artifacts": ["Halo artifacts"],
            }
        },
        headers=stack.auth("predict"),
    )
    assert recommend.status_code == 503, recommend.text
    assert "ptycho_agent service" in recommend.json()["detail"]
    assert "the model backend" in recommend.json()["detail"]  # the agent's own cause
    analyze = await stack.gateway.post(
        "/v1/analyze",
        files={"image": ("r.png", sample.image.read_bytes(), "image/png")},
        data={
            "request": json.dumps(
                {"sample": {"sample_type": sample.sample_type, "instrument": sample.instrument}}
            )
        },
        headers=stack.auth("predict"),
    )
    assert analyze.status_code == 503, analyze.text
    listed = await stack.gateway.get("/v1/predictions", headers=stack.auth("predict"))
    assert listed.json() == []  # the diagnosis step is not kept without its recommendation
    ready = await stack.gateway.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": True, "diagnosis": True, "agent": False}


async def test_the_openapi_document_describes_both_body_forms(stack: Stack) -> None:
    document = (await stack.gateway.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path, name in (("/v1/diagnose", "DiagnoseRequest"), ("/v1/analyze", "AnalyzeRequest")):
        content = document["paths"][path]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith(f"/{name}")
        assert "image" in content["multipart/form-data"]["schema"]["properties"]
        assert "image_base64" in schemas[name]["properties"]
    assert "Idempotency-Key" in json.dumps(document["paths"]["/v1/recommend"])


# a connection the server killed is dropped by SQLAlchemy and collected by psycopg
# without a close() (it cannot be closed any more): psycopg warns; nothing leaks
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_feedback_under_load_survives_postgresql_dropping_every_connection(
    postgres_stack: Stack, postgres_apps: Any
) -> None:
    """Eight reviews in flight while every connection of the gateway's database is
    terminated every 20 ms for half a second (what a PostgreSQL restart does to a
    pool): each review is answered 200 and kept, none twice."""
    import threading

    from sqlalchemy import create_engine, make_url, text

    stack = postgres_stack
    made = [(await _diagnose(stack, i % 4)).json()["prediction_id"] for i in range(8)]
    url = make_url(postgres_apps.database)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    killed: list[int] = []

    def terminate() -> None:
        for _ in range(25):
            if stop.is_set():
                return
            with admin.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": url.database},
                ).all()
            killed.append(len(rows))
            stop.wait(0.02)

    killer = threading.Thread(target=terminate)
    killer.start()
    try:
        answers = await asyncio.gather(
            *(
                stack.gateway.post(
                    f"/v1/feedback/{pid}",
                    json={"labels": ["Blurring"]},
                    headers=stack.auth("feedback"),
                )
                for pid in made
            )
        )
    finally:
        stop.set()
        killer.join()
        admin.dispose()
    assert sum(killed) > 0  # connections really were dropped while the reviews ran
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    for pid in made:
        kept = await stack.gateway.get(f"/v1/predictions/{pid}", headers=stack.auth("predict"))
        assert [f["labels"] for f in kept.json()["feedback"]] == [["Blurring"]]
