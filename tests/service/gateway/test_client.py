"""The Python client and `ptychoagent analyze` against the gateway served over real HTTP
(uvicorn in a thread), in front of the real diagnosis service; the agent's engine is
down, so recommendations are the failure path here (answers: tests/integration)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app
from ptychoagent.client import AsyncClient, Client, GatewayError
from ptychobench.data import read_release

DATASET = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"
Apps = Any  # conftest.Apps


@pytest.fixture
def served(apps: Apps, serve: Callable[..., Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """The gateway's URL and a key per scope."""
    with serve(apps.gateway) as url:
        yield url, apps.keys()


def _sample(index: int = 0) -> Any:
    return read_release(DATASET).samples("detection", "test")[index]


def _requests(metrics: str, route: str, status: int) -> float:
    series = f'method="POST",route="{route}",status="{status}"'
    found = re.search(rf"ptycho_gateway_requests_total\{{{series}\}} (\S+)", metrics)
    return float(found.group(1)) if found else 0.0


def test_the_sync_client_diagnoses_reviews_and_reads_live_f1(
    served: tuple[str, dict[str, str]],
) -> None:
    url, keys = served
    sample = _sample()
    with Client(url, keys["predict"]) as client:
        assert client.ready() is False  # the agent's engine is down
        answer = client.diagnose(
            sample.image, sample_type=sample.sample_type, instrument=sample.instrument
        )
        assert answer.backend == "classifier"
        assert answer.image.sha256
        record = client.prediction(answer.prediction_id)
        assert record.labels[0].label == answer.labels[0]
        assert [p.id for p in client.predictions(unreviewed=True)] == [answer.prediction_id]
    with Client(url, keys["feedback"]) as reviewer:
        review = reviewer.feedback(answer.prediction_id, list(sample.artifacts), comment="ok")
        assert review.labels == list(sample.artifacts)
        (live,) = reviewer.live_f1().scores
        assert live.reviewed == 1
        with pytest.raises(GatewayError, match="lacks the 'predict' scope") as refused:
            reviewer.diagnose(sample.image.read_bytes())
        assert refused.value.status == 403
    with Client(url, "pk_000000000000_" + "x" * 43) as stranger:
        with pytest.raises(GatewayError) as unknown:
            stranger.prediction(answer.prediction_id)
        assert unknown.value.status == 401


def test_a_503_is_retried_under_the_same_idempotency_key_then_raised(
    served: tuple[str, dict[str, str]],
) -> None:
    url, keys = served
    sample = {"instrument": "Velociprobe", "sample_type": "Siemens star", "artifacts": []}
    with (
        Client(url, keys["predict"], retries=2, backoff_s=0) as client,
        pytest.raises(GatewayError) as caught,
    ):
        client.recommend(sample, idempotency_key="plan-7-step-3")
    assert caught.value.status == 503
    assert "ptycho_agent service" in caught.value.detail
    metrics = httpx.get(f"{url}/metrics").text
    assert _requests(metrics, "/v1/recommend", 503) == 3  # the first try and two retries
    with Client(url, keys["predict"]) as client, pytest.raises(ValueError, match="cannot read"):
        client.diagnose("/no/such/image.png")


@pytest.mark.anyio
async def test_the_async_client_sends_one_prediction_per_idempotency_key(stack: Any) -> None:
    sample = _sample(1)
    transport = httpx.ASGITransport(app=stack.app)
    async with AsyncClient("http://gateway", stack.keys["predict"], transport=transport) as client:
        first = await client.diagnose(
            sample.image, sample_type=sample.sample_type, idempotency_key="scan-1"
        )
        again = await client.diagnose(
            sample.image, sample_type=sample.sample_type, idempotency_key="scan-1"
        )
        other = await client.diagnose(sample.image, sample_type=sample.sample_type)
        assert again.prediction_id == first.prediction_id
        assert other.prediction_id != first.prediction_id  # a fresh key per call
        assert len(await client.predictions()) == 2


def test_the_cli_reports_the_gateways_error_and_refuses_bad_parameters(
    served: tuple[str, dict[str, str]],
) -> None:
    url, keys = served
    image = str(_sample().image)
    base = ["analyze", image, "--sample-type", "Siemens star", "--instrument", "Velociprobe"]
    env = {"PTYCHO_GATEWAY_URL": url, "PTYCHO_API_KEY": keys["predict"]}
    result = CliRunner().invoke(app, [*base, "--param", "Number of iterations=100"], env=env)
    assert result.exit_code == 1
    assert "503" in result.output
    assert "ptycho_agent service" in result.output
    bad = CliRunner().invoke(app, [*base, "--param", "iterations"], env=env)
    assert bad.exit_code == 2
    assert "NAME=VALUE" in bad.output
    denied = CliRunner().invoke(app, base, env={**env, "PTYCHO_API_KEY": keys["feedback"]})
    assert denied.exit_code == 1
    assert "403" in denied.output
