"""The diagnosis service in-process: the classifier path for real (the committed
classifier), the VLM request built from real examples (the engine is scripted here; the
real one is in tests/integration/test_diagnosis_service.py), and every bad input."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ptychobench.classifier import FeatureClassifier
from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS
from services.diagnosis.app import create_app
from services.diagnosis.settings import DiagnosisBackendSettings, DiagnosisSettings

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
CLASSIFIER = ROOT / "artifacts" / "classifiers" / "physics-v1"


def _settings(**fields: Any) -> DiagnosisSettings:
    backend = fields.pop("backend", {})
    fields.setdefault("classifier", str(CLASSIFIER))
    return DiagnosisSettings(
        examples_dataset=str(DATASET),
        backend=DiagnosisBackendSettings(base_url="http://engine", backoff_s=0, **backend),
        **fields,
    )


def _client(
    handler: Callable[[httpx.Request], httpx.Response] | None = None, **settings: Any
) -> httpx.AsyncClient:
    transport = httpx.MockTransport(handler) if handler is not None else None
    app = create_app(_settings(**settings), transport=transport)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://diagnosis")


def _test_sample(index: int = 0) -> Any:
    return read_release(DATASET).samples("detection", "test")[index]


def _json_body(image: bytes, **options: Any) -> dict[str, Any]:
    return {"image_base64": base64.b64encode(image).decode(), **options}


async def test_the_classifier_labels_an_upload_as_the_model_does_in_json_and_multipart() -> None:
    sample = _test_sample(3)
    image = sample.image.read_bytes()
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(image)), dtype=np.float64) / 255
    expected = list(FeatureClassifier.load(CLASSIFIER).predict(pixels))
    meta = {"sample_type": sample.sample_type, "instrument": sample.instrument}
    async with _client() as client:
        as_json = await client.post("/v1/diagnose", json=_json_body(image, sample=meta))
        as_form = await client.post(
            "/v1/diagnose",
            files={"image": ("recon.png", image, "image/png")},
            data={"request": json.dumps({"sample": meta})},
        )
        metrics = (await client.get("/metrics")).text
        ready = await client.get("/readyz")
    assert as_json.status_code == 200, as_json.text
    assert as_form.status_code == 200, as_form.text
    body = as_json.json()
    assert body["labels"] == expected
    assert as_form.json()["labels"] == expected
    assert body["backend"] == "classifier"
    assert body["adapter"].startswith("physics")
    assert set(body["scores"]) == set(ARTIFACT_LABELS)
    assert body["image"]["width"] > 0
    assert body["image"]["format"] == "png"
    assert body["raw_answer"].startswith("<answer>[")
    assert (
        'ptycho_diagnosis_requests_total{method="POST",route="/v1/diagnose",status="200"} 2.0'
        in metrics
    )
    assert ready.status_code == 200, ready.text


def _engine(answer: str, bodies: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        reply = {
            "choices": [{"message": {"content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 9},
        }
        return httpx.Response(200, json=reply)

    return handler


async def test_the_vlm_prompt_carries_k_example_images_then_the_query_and_a_constraint() -> None:
    bodies: list[dict[str, Any]] = []
    sample = _test_sample(0)
    async with _client(_engine("<answer>[Blurring, Rainbows]</answer>", bodies)) as client:
        response = await client.post(
            "/v1/diagnose",
            json=_json_body(
                sample.image.read_bytes(),
                sample={"sample_type": sample.sample_type},
                backend="vlm",
                k=3,
                adapter="vlm-sft",
            ),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == ["Blurring"]
    assert body["unmapped"] == ["Rainbows"]
    assert len(body["example_ids"]) == 3
    sent = bodies[0]
    assert sent["model"] == "vlm-sft"
    images = [
        part
        for message in sent["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    assert len(images) == 4
    query_image = base64.b64decode(images[-1]["image_url"]["url"].split(",", 1)[1])
    assert query_image == sample.image.read_bytes()
    assert "regex" in sent["structured_outputs"]


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_a_dead_engine_gives_503_after_retries_and_then_fails_fast() -> None:
    image = _test_sample().image.read_bytes()
    body = _json_body(image, backend="vlm")
    async with _client(_down, backend={"max_retries": 1, "circuit_failures": 2}) as client:
        first = await client.post("/v1/diagnose", json=body)
        second = await client.post("/v1/diagnose", json=body)
        classifier = await client.post("/v1/diagnose", json=_json_body(image))
    assert first.status_code == 503
    assert "did not answer after 2 attempts" in first.json()["detail"]
    assert second.status_code == 503
    assert "circuit is open" in second.json()["detail"]
    assert classifier.status_code == 200  # the in-process classifier does not need it


async def test_an_unknown_adapter_is_a_404_naming_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "The model `nope` does not exist."})

    image = _test_sample().image.read_bytes()
    async with _client(refuse) as client:
        vlm = await client.post(
            "/v1/diagnose", json=_json_body(image, backend="vlm", adapter="nope")
        )
        classifier = await client.post("/v1/diagnose", json=_json_body(image, adapter="nope"))
    assert vlm.status_code == 404
    assert "nope" in vlm.json()["detail"]
    assert classifier.status_code == 404
    assert "unknown classifier 'nope'" in classifier.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        ({"content": b"{}", "headers": {"content-type": "text/plain"}}, 415, "not accepted"),
        ({"content": b"{}"}, 400, "no Content-Type"),
        ({"json": {"k": 1}}, 422, "body.image_base64"),
        ({"json": {"image_base64": "!!!"}}, 422, "not valid base64"),
        ({"json": {"image_base64": base64.b64encode(b"GIF89a....").decode()}}, 415, "not PNG"),
        ({"json": {"image_base64": "aGVsbG8=", "colour": "red"}}, 422, "body.colour"),
        ({"json": {"image_base64": "aGVsbG8=", "k": 99}}, 422, "body.k"),
        ({"json": {"image_base64": "aGVsbG8=", "strategy": "best"}}, 422, "body.strategy"),
        ({"files": {"picture": ("a.png", b"x", "image/png")}}, 422, "unknown form field"),
        ({"files": {"image": ("a.png", b"x", "image/png")}, "data": {"request": "{"}}, 422, "body"),
    ],
)
async def test_bad_requests_get_problem_json(
    kwargs: dict[str, Any], status: int, detail: str
) -> None:
    async with _client() as client:
        response = await client.post("/v1/diagnose", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert response.json()["instance"]


async def test_images_over_the_limits_and_corrupt_images_are_refused() -> None:
    image = _test_sample().image.read_bytes()
    async with _client(max_pixels=1000, max_image_bytes=len(image) + 10, max_k=2) as client:
        pixels = await client.post("/v1/diagnose", json=_json_body(image))
        too_big = await client.post("/v1/diagnose", json=_json_body(image + b"\x00" * 20))
        k = await client.post("/v1/diagnose", json=_json_body(image, k=3))
    async with _client() as client:
        corrupt = await client.post("/v1/diagnose", json=_json_body(image[:300]))
    assert pixels.status_code == 413
    assert "pixels" in pixels.json()["detail"]
    assert too_big.status_code == 413
    assert corrupt.status_code == 422
    assert "could not be decoded" in corrupt.json()["detail"]
    assert k.status_code == 422
    assert "limit 2" in k.json()["detail"]


async def test_a_missing_classifier_makes_the_service_unready(tmp_path: Path) -> None:
    async with _client(classifier=str(tmp_path / "none")) as client:
        ready = await client.get("/readyz")
        response = await client.post(
            "/v1/diagnose", json=_json_body(_test_sample().image.read_bytes())
        )
    assert ready.status_code == 503
    assert "classifier" in ready.json()["detail"]
    assert response.status_code == 503  # the service's fault, not the caller's
    assert "missing or broken" in response.json()["detail"]


async def test_a_classifier_whose_backbone_is_not_installed_is_a_503_that_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ptychobench import backbone

    def missing() -> str:
        raise backbone.BackboneUnavailableError("install the weights (as this test removed)")

    monkeypatch.setattr(backbone, "_cache", {})  # the network is built afresh
    monkeypatch.setattr(backbone, "weights_path", missing)
    assert FeatureClassifier.load(CLASSIFIER).projection is not None  # it reads the backbone
    async with _client() as client:
        ready = await client.get("/readyz")
        response = await client.post(
            "/v1/diagnose", json=_json_body(_test_sample().image.read_bytes())
        )
    assert ready.status_code == 503
    assert response.status_code == 503
    assert "install the weights (as this test removed)" in response.json()["detail"]


async def test_an_npy_declaring_an_absurd_shape_is_a_413_problem_not_a_500() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (16, 16, 10**12)}
    )
    async with _client() as client:
        response = await client.post("/v1/diagnose", json=_json_body(header.getvalue()))
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "refused before decoding" in response.json()["detail"]


async def test_a_colormapped_upload_is_classified_on_its_phase_and_says_which_map() -> None:
    from PIL import Image

    from ptychobench.canonical import canonical
    from ptychobench.sim.render import Rendering, render

    grey = np.asarray(Image.open(_test_sample(3).image), dtype=np.float64) / 255
    image = render(grey, (0.0, 1.0), Rendering(colormap="turbo", size=grey.shape[0]))
    pixels = canonical(np.asarray(Image.open(io.BytesIO(image)))).pixels
    expected = list(FeatureClassifier.load(CLASSIFIER).predict(pixels))
    async with _client() as client:
        response = await client.post("/v1/diagnose", json=_json_body(image))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == expected
    assert body["image"]["mode"] == "rgb"
    assert body["image"]["colormap"] == "turbo"
