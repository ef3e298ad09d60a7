"""The gateway's circuits to the diagnosis service are per backend: a dead VLM engine
does not take the classifier down with it, and a caller's bad input counts against no
circuit (the real diagnosis service, whose VLM engine is not running)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from ptychobench.data import read_release

pytestmark = pytest.mark.anyio
DATASET = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"
Stack = Any  # conftest.Stack


def _body(**options: Any) -> dict[str, Any]:
    sample = read_release(DATASET).samples("detection", "test")[0]
    return {
        "image_base64": base64.b64encode(sample.image.read_bytes()).decode(),
        "sample": {"sample_type": sample.sample_type, "instrument": sample.instrument},
        **options,
    }


async def test_a_dead_vlm_leaves_the_classifier_answering(stack: Stack) -> None:
    auth = stack.auth("predict")
    # FAST: two attempts a request, five failures open a circuit
    for _ in range(3):
        down = await stack.gateway.post("/v1/diagnose", json=_body(backend="vlm"), headers=auth)
        assert down.status_code == 503, down.text
    assert "circuit is open" in down.json()["detail"]
    classifier = await stack.gateway.post(
        "/v1/diagnose", json=_body(backend="classifier"), headers=auth
    )
    assert classifier.status_code == 200, classifier.text
    default = await stack.gateway.post("/v1/diagnose", json=_body(), headers=auth)
    assert default.status_code == 200, default.text
    metrics = (await stack.gateway.get("/metrics")).text
    assert 'ptycho_gateway_upstream_circuit_state{state="open",upstream="diagnosis:vlm"} 1.0' in (
        metrics
    )
    assert (
        'ptycho_gateway_upstream_circuit_state{state="closed",upstream="diagnosis:classifier"} 1.0'
        in metrics
    )


async def test_one_callers_bad_input_switches_nothing_off(stack: Stack) -> None:
    auth = stack.auth("predict")
    for _ in range(12):  # not an image: the diagnosis service refuses it (415)
        bad = await stack.gateway.post(
            "/v1/diagnose", json={"image_base64": "aGVsbG8="}, headers=auth
        )
        assert bad.status_code == 415, bad.text
    good = await stack.gateway.post("/v1/diagnose", json=_body(), headers=auth)
    assert good.status_code == 200, good.text
