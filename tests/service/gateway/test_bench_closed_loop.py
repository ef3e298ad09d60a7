"""The closed-loop task through the in-process gateway: the baseline arms' letters are
reconstructed for real and stored with their outcome; the model, whose engine is down
in this stack, is an error row the report counts and a resumed run asks again, while
the reconstructions already stored are not made again."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bench.config import parse_config
from gateway.bench.report import build_report, render_markdown
from gateway.bench.runner import run_benchmark, run_record
from gateway.bench.store import RunStore
from ptychoagent.bench import HttpPredictor
from ptychoagent.client import AsyncClient
from services.common.database import make_engine

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


async def test_a_closed_loop_run_reconstructs_stores_and_reports(stack: Any, apps: Any) -> None:
    config = parse_config(
        {
            "name": "closed-loop-smoke",
            "dataset": str(DATASET),
            "tasks": ["closed_loop"],
            "models": {"recommendation": [{"name": "sft", "adapter": "smollm2-135m-agent"}]},
            "k": [0],
            "limit": 1,
            "concurrency": 2,
        }
    )
    runs = RunStore(make_engine(apps.database))
    transport = httpx.ASGITransport(app=stack.app)
    async with AsyncClient(
        "http://gateway", stack.keys["predict"], transport=transport, backoff_s=0
    ) as client:
        run = await run_benchmark(config, runs, HttpPredictor(client), gateway_url="test")
        assert (run.status, run.done, run.failed, run.total) == ("finished", 5, 1, 6)
        first = {item.model: item for item in runs.items(run.id)}
        again = await run_benchmark(config, runs, HttpPredictor(client), gateway_url="test")
    assert (again.id, again.done, again.failed) == (run.id, 5, 1)  # the model asked again
    items = runs.items(run.id)
    stored = {item.model: item for item in items}
    oracle = stored["oracle"]
    assert oracle.predicted == oracle.truth  # the injected faults' letters
    assert oracle.outcome is not None
    assert oracle.outcome["applied"] == list(oracle.truth)
    assert oracle.outcome["reconstructions"] == 1
    assert oracle.outcome["fixed"] is (oracle.outcome["gain"] >= 0.3)
    assert stored["none"].outcome is not None
    assert stored["none"].outcome["reconstructions"] == 0
    assert list(stored["constant"].predicted) == ["K", "L"]  # the training split's best constant
    for arm in ("none", "random", "constant", "oracle", "rule"):  # resumed: not reconstructed again
        assert stored[arm].outcome == first[arm].outcome
    assert stored["sft"].error is not None
    assert stored["sft"].outcome is None

    report = build_report(items, run_record(runs.get(run.id), str(DATASET)), n_resamples=200)
    arms = {arm["arm"]: arm for arm in report.closed_loop}
    assert list(arms) == ["none", "random", "constant", "oracle", "rule", "sft k=0"]
    assert (arms["sft k=0"]["n"], arms["sft k=0"]["errors"]) == (0, 1)
    assert arms["oracle"]["fix_rate"] == float(oracle.outcome["fixed"])
    assert arms["none"]["fix_rate"] == 0.0
    assert arms["oracle"]["vs_none"]["n"] == 1
    assert "closed_loop sft k=0: no scored items (1 failed)" in report.missing
    (digest,) = report.settings["closed_loop_samples_sha256"]
    assert digest == hashlib.sha256((DATASET / "samples.jsonl").read_bytes()).hexdigest()
    markdown = render_markdown(report)
    assert "## Closed loop" in markdown
    assert "| oracle | 1 | 0 |" in markdown
