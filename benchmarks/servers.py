"""The gateway and the diagnosis service (its classifier backend) as child processes on
loopback, for the load and the database-fault benchmarks; each its own uvicorn, as
``ptychoagent serve`` runs them. The agent is not started (nothing here needs vLLM): its
URL points at a port nothing listens on.

::

    with Gateway(database_url, state_dir) as gateway:
        key = gateway.key(["predict", "feedback"])
        httpx.post(gateway.url + "/v1/diagnose", ...)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
FACTORIES = {
    "diagnosis": "services.diagnosis.app:create_app",
    "gateway": "gateway.app:create_app",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Gateway:
    """The gateway over ``database_url`` in front of a diagnosis service; logs and the
    SQLite files (if any) go to ``state_dir``."""

    def __init__(self, database_url: str, state_dir: Path, *, workers: int = 1) -> None:
        self.database_url = database_url
        self.state_dir = state_dir
        self.workers = workers
        self.ports = {name: free_port() for name in FACTORIES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['gateway']}"

    def __enter__(self) -> Self:
        try:
            self._spawn(
                "diagnosis",
                {"DIAGNOSIS_CLASSIFIER": str(ROOT / "artifacts/classifiers/physics-v1")},
            )
            self._wait("diagnosis", "/readyz")
            self._spawn(
                "gateway",
                {
                    "GATEWAY_DATABASE_URL": self.database_url,
                    "GATEWAY_DIAGNOSIS__BASE_URL": f"http://{HOST}:{self.ports['diagnosis']}",
                    "GATEWAY_AGENT__BASE_URL": f"http://{HOST}:{free_port()}",
                    "GATEWAY_REPORTS_DIR": str(self.state_dir / "reports"),
                },
            )
            self._wait("gateway", "/healthz")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def key(self, scopes: list[str]) -> str:
        """A new API key with ``scopes`` (the gateway has migrated its database)."""
        from gateway.keys import KeyStore
        from services.common.database import make_engine

        engine = make_engine(self.database_url)
        try:
            return KeyStore(engine).create(f"bench-{'-'.join(scopes)}", scopes)[1]
        finally:
            engine.dispose()

    def _spawn(self, name: str, environment: dict[str, str]) -> None:
        ours = ("GATEWAY_", "AGENT_", "DIAGNOSIS_", "RETRIEVER_")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        argv = [sys.executable, "-m", "uvicorn", "--factory", FACTORIES[name]]
        argv += ["--host", HOST, "--port", str(self.ports[name]), "--log-level", "warning"]
        if name == "gateway" and self.workers > 1:
            argv += ["--workers", str(self.workers)]
        with (self.state_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**clean, "PYTHONPATH": str(ROOT), **environment},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, name: str, path: str, timeout_s: float = 120) -> None:
        url = f"http://{HOST}:{self.ports[name]}{path}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.state_dir / (name + '.log')}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{name} was not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM to each process group, SIGKILL after 15 s."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def exit_on_sigterm() -> None:
    """SIGTERM (a ``timeout``, a CI runner) exits through the ``finally`` blocks, so the
    servers this benchmark started are stopped with it."""
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
