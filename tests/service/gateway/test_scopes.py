"""One rule for who reads what, the same under /v1 and /ui (gateway.auth.ACCESS):
predictions, their images and live F1 are for the keys that make or review them
(predict, feedback); benchmark runs for every key; an admin-only key reads runs, not
predictions, whichever door it uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import ACCESS
from ptychobench.data import read_release

pytestmark = pytest.mark.anyio
DATASET = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"
Stack = Any  # conftest.Stack


async def _session(stack: Stack, scope: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.app), base_url="http://gateway"
    )
    await client.get("/ui/login")
    csrf = client.cookies["ptycho_ui_csrf"]
    signed = await client.post("/ui/login", data={"api_key": stack.keys[scope], "csrf_token": csrf})
    assert signed.status_code == 303, signed.text
    return client


def test_the_rule_is_one_table() -> None:
    assert ACCESS["read"] == ("predict", "feedback")
    assert "admin" not in ACCESS["read"]
    assert set(ACCESS["benchmarks"]) == {"predict", "feedback", "admin"}


@pytest.mark.parametrize("scope", ["predict", "feedback", "admin"])
async def test_the_api_and_the_review_page_admit_the_same_keys(stack: Stack, scope: str) -> None:
    sample = read_release(DATASET).samples("detection", "test")[0]
    options = {"sample": {"sample_type": sample.sample_type, "instrument": sample.instrument}}
    made = await stack.gateway.post(
        "/v1/diagnose",
        files={"image": ("r.png", sample.image.read_bytes(), "image/png")},
        data={"request": json.dumps(options)},
        headers=stack.auth("predict"),
    )
    prediction = made.json()["prediction_id"]
    pairs = {
        "read": [
            ("/v1/predictions", "/ui"),
            (f"/v1/predictions/{prediction}", f"/ui/predictions/{prediction}"),
            (f"/v1/predictions/{prediction}/image", f"/ui/predictions/{prediction}/image"),
            ("/v1/live-f1", "/ui/live-f1"),
        ],
        "benchmarks": [("/v1/benchmarks", "/ui/benchmarks")],
    }
    ui = await _session(stack, scope)
    try:
        for action, paths in pairs.items():
            expected = 200 if scope in ACCESS[action] else 403
            for api_path, ui_path in paths:
                api = await stack.gateway.get(api_path, headers=stack.auth(scope))
                page = await ui.get(ui_path)
                assert (api.status_code, page.status_code) == (expected, expected), (
                    scope,
                    api_path,
                    ui_path,
                )
                if expected == 403:
                    assert "'predict' or 'feedback'" in page.text
    finally:
        await ui.aclose()
