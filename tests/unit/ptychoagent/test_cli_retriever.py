"""`ptychoagent retriever ingest` and `ptychoagent serve retriever`, for real: a SQLite
file filled by the command, then served by a uvicorn process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ptychoagent.cli import app

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


def _get(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, object] = json.load(response)
        return result


def test_ingest_then_serve_the_pool(tmp_path: Path, free_tcp_port: Callable[[], int]) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'project.db'}"
    first = CliRunner().invoke(app, ["retriever", "ingest", str(DATASET), "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "526 inserted, 0 updated" in first.output
    assert re.search(r"detection +train +dataset +312", first.output)
    again = CliRunner().invoke(app, ["retriever", "ingest", str(DATASET), "--database-url", url])
    assert "0 inserted, 526 updated" in again.output
    missing = CliRunner().invoke(app, ["retriever", "ingest", str(tmp_path), "--database-url", url])
    assert missing.exit_code == 1
    assert "error:" in missing.output

    port = free_tcp_port()
    env = {**os.environ, "RETRIEVER_DATABASE_URL": url, "RETRIEVER_SEMANTIC": "false"}
    command = [str(Path(sys.executable).parent / "ptychoagent"), "serve", "retriever"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                assert _get(f"{base}/readyz")["status"] == "ready"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the retriever did not start"
                time.sleep(0.3)
        query = {"sample_type": "Supercrystal"}
        selected = _get(
            f"{base}/v1/examples/select", {"task": "recommendation", "query": query, "k": 2}
        )
        assert selected["pool_size"] == 91
        examples = selected["examples"]
        assert isinstance(examples, list)
        assert [e["sample_type"] for e in examples] == ["Supercrystal", "Supercrystal"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
