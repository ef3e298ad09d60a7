"""A real Prometheus (Debian's package) scrapes a running gateway after a small benchmark
run whose items were reviewed with their truths, and its recording rule gives the same
micro-F1 as the benchmark report."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.bench.config import parse_config
from gateway.bench.records import RunRecord
from gateway.bench.report import build_report
from gateway.bench.runner import run_benchmark
from gateway.bench.store import RunStore
from gateway.keys import KeyStore
from ptychoagent.bench import HttpPredictor
from ptychoagent.client import AsyncClient
from services.common.database import make_engine

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "live_f1.yml"


@pytest.fixture
def prometheus(tmp_path: Path, free_tcp_port: Callable[[], int]) -> Iterator[Callable[[str], str]]:
    """``start(target)``: a Prometheus scraping ``host:port`` every second with the
    live-F1 rules; returns its URL (stopped after the test)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `make tools` (Debian package prometheus)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_tcp_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [target]}]}],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        with (tmp_path / "prometheus.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={path}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def _query(url: str, expr: str, deadline_s: float = 60) -> list[dict[str, Any]]:
    """The first non-empty instant result of ``expr`` (Prometheus needs a few scrape and
    rule-evaluation rounds)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
        except (httpx.HTTPError, ValueError):  # not up yet, or not ready (plain text)
            body = {}
        result = body.get("data", {}).get("result", [])
        if result:
            return list(result)
        time.sleep(0.5)
    raise AssertionError(f"Prometheus gave nothing for {expr} in {deadline_s} s")


def test_the_recorded_live_micro_f1_is_the_benchmark_reports(
    apps: Any, serve: Callable[..., Any], prometheus: Callable[[str], str]
) -> None:
    config = parse_config(
        {
            "name": "live-f1",
            "dataset": str(ROOT / "data" / "ptychobench-sim"),
            "tasks": ["detection"],
            "models": {"detection": [{"name": "classifier", "backend": "classifier"}]},
            "limit": 12,
            "feedback": True,
        }
    )
    with serve(apps.gateway) as url:
        token = KeyStore(make_engine(apps.database)).create("bench", ["predict", "feedback"])[1]
        runs = RunStore(make_engine(apps.database))

        async def sweep() -> Any:
            async with AsyncClient(url, token) as client:
                return await run_benchmark(config, runs, HttpPredictor(client), gateway_url=url)

        run = asyncio.run(sweep())
        record = RunRecord(
            run.id,
            run.name,
            run.config_hash,
            run.config,
            None,
            config.dataset,
            "test",
            "",
            None,
            url,
        )
        report = build_report(runs.items(run.id), record, n_resamples=100)
        (cell,) = [c for c in report.cells if c["task"] == "detection"]
        promql = prometheus(url.removeprefix("http://"))
        (series,) = _query(promql, 'ptycho:live_micro_f1{task="detection"}')
    assert cell["n_scored"] == 12
    assert float(series["value"][1]) == pytest.approx(cell["micro_f1"], abs=1e-9)
    assert series["metric"]["adapter"] == cell["adapters"][0]
