"""An Idempotency-Key is answered exactly once across processes: two gateways
(``ptychoagent serve gateway --workers 2`` each) over one database, in front of the real
diagnosis service (its committed classifier, over HTTP). Ten concurrent requests with one
key, spread over both, make one model call and one stored prediction, and all ten get
that answer. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.keys import KeyStore
from gateway.store import PredictionStore
from ptychobench.data import read_release
from services.common.database import make_engine, migrate

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"
CONCURRENT = 10
TRIALS = int(os.environ.get("PTYCHO_IDEMPOTENCY_TRIALS", "3"))  # read before the env is cleared


@pytest.fixture(scope="module")
def diagnosis_url(serve: Callable[..., Any]) -> Iterator[str]:
    from services.diagnosis.app import create_app
    from services.diagnosis.settings import DiagnosisSettings

    settings = DiagnosisSettings(
        classifier=str(ROOT / "artifacts" / "classifiers" / "physics-v1"),
        examples_dataset=str(DATASET),
    )
    with serve(create_app(settings)) as url:
        yield url


@contextlib.contextmanager
def gateway(database: str, diagnosis: str, port: int, log: Path) -> Iterator[str]:
    """``ptychoagent serve gateway --workers 2`` on ``port``; its URL once it answers."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "PYTHONPATH": str(ROOT),
        "GATEWAY_DATABASE_URL": database,
        "GATEWAY_DIAGNOSIS__BASE_URL": diagnosis,
        "GATEWAY_AGENT__BASE_URL": "http://127.0.0.1:9",
    }
    argv = [sys.executable, "-c", "from ptychoagent.cli import main; main()", "serve", "gateway"]
    argv += ["--port", str(port), "--workers", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _model_calls(diagnosis: str) -> float:
    text = httpx.get(f"{diagnosis}/metrics").text
    found = re.search(
        r'ptycho_diagnosis_requests_total\{method="POST",route="/v1/diagnose",status="200"\} (\S+)',
        text,
    )
    return float(found.group(1)) if found else 0.0


async def _burst(urls: list[str], token: str, key: str) -> list[httpx.Response]:
    sample = read_release(DATASET).samples("detection", "test")[0]
    options = {"sample": {"sample_type": sample.sample_type, "instrument": sample.instrument}}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}

    async def one(client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.post(
            f"{url}/v1/diagnose",
            files={"image": ("r.png", sample.image.read_bytes(), "image/png")},
            data={"request": json.dumps(options)},
            headers=headers,
        )

    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(*(one(client, urls[i % len(urls)]) for i in range(CONCURRENT)))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_one_key_is_one_model_call_across_processes(
    database: str,
    diagnosis_url: str,
    tmp_path: Path,
    free_tcp_port: Callable[[], int],
    request: pytest.FixtureRequest,
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'gateway.db'}"
        if database == "sqlite"
        else request.getfixturevalue("empty_postgres")
    )
    engine = make_engine(url)
    migrate(engine)  # as a deployment does before it scales out
    token = KeyStore(engine).create("beamline", ["predict"])[1]
    httpx.get(f"{diagnosis_url}/readyz")  # the classifier loaded before the race
    with (
        gateway(url, diagnosis_url, free_tcp_port(), tmp_path / "a.log") as first,
        gateway(url, diagnosis_url, free_tcp_port(), tmp_path / "b.log") as second,
    ):
        for trial in range(TRIALS):
            before = _model_calls(diagnosis_url)
            answers = await _burst([first, second], token, f"scan-{trial}")
            assert [a.status_code for a in answers] == [200] * CONCURRENT, [
                a.text for a in answers if a.status_code != 200
            ]
            calls = _model_calls(diagnosis_url) - before
            print(f"{database} trial {trial}: {calls:.0f} model call(s)")
            assert calls == 1
            assert len({a.json()["prediction_id"] for a in answers}) == 1
            fresh = [a for a in answers if a.headers["Idempotent-Replayed"] == "false"]
            assert len(fresh) == 1
    stored = PredictionStore(engine).recent(100)
    engine.dispose()
    assert len(stored) == TRIALS
