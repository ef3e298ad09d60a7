"""`make run`'s machinery for real: the stack's services as their own processes on their
own ports (in front of the session's engine), a small sweep through the gateway, the
report, the live F1 the feedback made, one round of `ptychoagent refine` through the
live services, and everything stopped afterwards."""

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
from typer.testing import CliRunner

from gateway.bench.config import parse_config
from ptychoagent.cli import app as cli
from ptychoagent.cli.bench import run_and_report
from ptychoagent.stack import Stack, StackError, StackSettings, _listening
from ptychobench.classifier import FeatureClassifier

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"
REFINE_SAMPLE = "14e1b638"  # Supercrystal, too few iterations: Blurring, Low contrast; fix K


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
        refined = _refine_one_round(stack, tmp_path)
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
    classifier = FeatureClassifier.load(ROOT / "artifacts" / "classifiers" / "physics-v1")
    served = f"{classifier.name}@{classifier.version}"
    assert {name: s["reviewed"] for name, s in detectors.items()} == {
        served: 2,
        smolvlm_engine["adapter"]: 2,
    }
    detector = detectors[served]
    assert detector["micro_f1"] == pytest.approx(
        cells[("detection", "classifier", "none", 0)]["micro_f1"]
    )
    reviewed = {s["adapter"]: s["reviewed"] for s in live["scores"] if s["task"] != "detection"}
    assert reviewed == {"base": 2, "smollm2-135m-agent": 2}
    assert "ptycho_gateway_label_outcomes_total" in metrics
    # the closed loop through the live services: reconstructed by the reconstructor,
    # diagnosed by the classifier, letters from the served SFT adapter, judged, stored
    (only,) = refined["rounds"]
    assert only["adapter"] == "smollm2-135m-agent"
    assert only["diagnose_before_id"]
    assert only["recommend_id"]
    assert only["recon_before_job"]
    assert only["outcome"] in ("accepted", "rejected", "unchanged", "clean")
    if only["applied"]:  # a change was made: reconstructed again and judged on evidence
        assert only["recon_after_job"]
        verdict = only["verdict"]
        assert verdict["checks"]  # each targeted artifact judged on its metric
        assert verdict["accepted"] == (only["outcome"] == "accepted")
        assert bool(verdict["reasons"]) != verdict["accepted"]  # a rejection says why
        assert (tmp_path / "refine" / "round1-after.png").is_file()
    assert (tmp_path / "refine" / "round1-before.png").is_file()
    assert "ptycho_gateway_refine_rounds_total{" in metrics
    for port in ports.values():  # everything the stack started is gone
        assert not _listening("127.0.0.1", port)


def _refine_one_round(stack: Stack, tmp_path: Path) -> dict[str, Any]:
    """`ptychoagent refine` on a faulted experiment exported from the committed
    PtychoBench-Sim, one round; the job record it wrote."""
    from ptychobench.experiment_io import write_experiment
    from ptychobench.sim.export import export_experiment

    experiment = tmp_path / "experiment.h5"
    write_experiment(experiment, export_experiment(DATASET, REFINE_SAMPLE, device="cpu"))
    arguments = ["refine", str(experiment), "--sample-type", "Supercrystal"]
    arguments += ["--instrument", "APS-2IDE-XFM", "--rounds", "1", "--backend", "classifier"]
    arguments += ["--adapter", "smollm2-135m-agent", "--out", str(tmp_path / "refine")]
    arguments += ["--gateway", stack.gateway_url, "--api-key", stack.api_key, "--poll-s", "0.2"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "round 1:" in result.output
    return dict(json.loads((tmp_path / "refine" / "refine.json").read_text()))


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
