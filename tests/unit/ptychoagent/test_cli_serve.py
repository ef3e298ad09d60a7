"""`ptychoagent serve`: a real uvicorn process serving a service app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app

ROOT = Path(__file__).resolve().parents[3]


def test_an_unknown_service_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["serve", "retriever-x"])
    assert result.exit_code == 2
    assert "unknown service 'retriever-x'" in result.output


def test_serve_agent_answers_health_and_reports_its_backend_down(
    free_tcp_port: Callable[[], int],
) -> None:
    port = free_tcp_port()
    env = {
        **os.environ,
        "AGENT_BACKEND__BASE_URL": f"http://127.0.0.1:{free_tcp_port()}",  # nothing listens
        "AGENT_EXAMPLES_DATASET": str(ROOT / "data" / "ptychobench-sim"),
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ptychoagent"), "serve", "agent", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    assert json.load(response) == {"status": "ok"}
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)
        assert caught.value.code == 503
        with caught.value:
            assert json.loads(caught.value.read())["checks"] == {
                "backend": False,
                "examples": True,
            }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_reconstructor_is_served_as_one_process() -> None:
    from ptychoagent.cli.serve import FACTORIES, PORTS

    assert FACTORIES["reconstructor"] == "services.reconstructor.app:create_app"
    assert PORTS["reconstructor"] == 8104
    result = CliRunner().invoke(app, ["serve", "reconstructor", "--workers", "2"])
    assert result.exit_code == 2
    assert "RECONSTRUCTOR_WORKERS" in result.output
