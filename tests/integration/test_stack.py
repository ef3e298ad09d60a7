"""`make run`'s machinery for real: the stack's services as their own processes on their
own ports (in front of the session's engine), a small sweep through the gateway, the
report, the live F1 the feedback made, and everything stopped afterwards."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from gateway.bench.config import parse_config
from ptychoagent.cli.bench import run_and_report
from ptychoagent.stack import Stack, StackError, StackSettings, _listening

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_runs_a_sweep_through_the_gateway_and_stops(
    engine: dict[str, Any],
    smolvlm_engine: dict[str, Any],
    tmp_path: Path,
    free_tcp_port: Callable[[], int],
) -> None:
    names = ("gateway", "retriever", "agent", "diagnosis", "reconstructor")
    ports = {name: free_tcp_port() for name in names}
    settings = StackSettings(
        state_dir=tmp_path / "stack",
        engine_url=engine["config"].base_url,
        vlm_engine_url=smolvlm_engine["base_url"],
        ports=ports,
    )
    config = parse_config(
        {
            "name": "smoke",
            "dataset": str(ROOT / "data" / "ptychobench-sim"),
            "models": {
                "detection": [
                    {"name": "classifier", "backend": "classifier"},
                    {"name": "vlm-sft", "backend": "vlm", "adapter": smolvlm_engine["adapter"]},
                ],
                "recommendation": [
                    {"name": "base", "adapter": "base"},
                    {"name": "sft", "adapter": "smollm2-135m-agent"},
                ],
            },
            "strategies": ["ssfs"],
            "k": [0],
            "limit": 2,
            "feedback": True,
        }
    )
    console = Console(file=io.StringIO(), width=200)
    with Stack(settings) as stack:
        out = asyncio.run(
            run_and_report(
                config,
                stack.gateway_url,
                stack.api_key,
                stack.database_url,
                tmp_path / "reports",
                False,
                200,
                console,
            )
        )
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        live = httpx.get(f"{stack.gateway_url}/v1/live-f1", headers=headers).json()
        metrics = httpx.get(f"{stack.gateway_url}/metrics").text
    report = json.loads((out / "report.json").read_text())
    assert {p.name for p in out.iterdir()} >= {
        "report.md",
        "report.json",
        "cells.csv",
        "f1_vs_k.png",
    }
    # 2 classifier and 2 VLM items; 2 models × 2 samples at k = 0
    totals = {(t["task"], t["model"]): t for t in report["totals"]}
    assert set(totals) == {
        ("detection", "classifier"),
        ("detection", "vlm-sft"),
        ("recommendation", "base"),
        ("recommendation", "sft"),
    }
    assert "recommendation" in console.file.getvalue()  # the tables were printed
    # every item was reviewed with its truth: the detector's live F1 is the report's
    cells = {(c["task"], c["model"], c["strategy"], c["k"]): c for c in report["cells"]}
    detectors = {s["adapter"]: s for s in live["scores"] if s["task"] == "detection"}
    assert {name: s["reviewed"] for name, s in detectors.items()} == {
        "physics-v1@1": 2,
        smolvlm_engine["adapter"]: 2,
    }
    detector = detectors["physics-v1@1"]
    assert detector["micro_f1"] == pytest.approx(
        cells[("detection", "classifier", "none", 0)]["micro_f1"]
    )
    reviewed = {s["adapter"]: s["reviewed"] for s in live["scores"] if s["task"] != "detection"}
    assert reviewed == {"base": 2, "smollm2-135m-agent": 2}
    assert "ptycho_gateway_label_outcomes_total" in metrics
    for port in ports.values():  # everything the stack started is gone
        assert not _listening("127.0.0.1", port)


def test_a_taken_port_is_a_clear_error(tmp_path: Path, serve: Callable[..., Any]) -> None:
    from fastapi import FastAPI

    with serve(FastAPI()) as url:
        port = int(url.rsplit(":", 1)[1])
        settings = StackSettings(
            state_dir=tmp_path, engine_url="http://127.0.0.1:9", ports={"gateway": port}
        )
        with (
            pytest.raises(StackError, match=f"port {port} \\(gateway\\) is taken"),
            Stack(settings),
        ):
            pass
