"""`make run` knows that what answers on its ports is what it started: a port another
program took while the engines started fails the run at once, naming the port and the
program; the services it started answer with its run's nonce (no engine needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ptychoagent.stack import Stack, StackError, StackSettings

ROOT = Path(__file__).resolve().parents[3]


def _foreign() -> FastAPI:
    """Someone else's service: healthy and ready, but not ours."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


@pytest.fixture
def idle() -> Iterator[subprocess.Popen[bytes]]:
    """A process of ours that never binds its port (as when another program took it)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_port_taken_meanwhile_fails_at_once_naming_it(
    tmp_path: Path,
    serve: Callable[..., Any],
    free_tcp_port: Callable[[], int],
    idle: subprocess.Popen[bytes],
) -> None:
    port = free_tcp_port()
    stack = Stack(StackSettings(state_dir=tmp_path, ports={"gateway": port}, ready_timeout_s=60))
    stack.processes["gateway"] = idle
    with serve(_foreign(), port), pytest.raises(StackError) as caught:
        stack.wait_ready("gateway", "/readyz")
    message = str(caught.value)
    assert f"port {port}" in message
    assert f"pid {idle.pid}" in message  # ours, which did not get the port
    assert f"pid {os.getpid()}" in message  # the program that answers there instead


def test_the_services_it_started_answer_with_its_nonce(
    tmp_path: Path, free_tcp_port: Callable[[], int]
) -> None:
    port = free_tcp_port()
    ports = {**StackSettings().ports, "diagnosis": port}
    stack = Stack(StackSettings(state_dir=tmp_path, ports=ports, ready_timeout_s=120))
    environment = {"DIAGNOSIS_CLASSIFIER": str(ROOT / "artifacts" / "classifiers" / "physics-v1")}
    stack.spawn("diagnosis", environment)
    try:
        stack.wait_ready("diagnosis", "/readyz")
    finally:
        stack.stop()
    assert stack.processes == {}
