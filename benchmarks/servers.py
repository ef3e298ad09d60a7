"""The gateway and the diagnosis service (its classifier backend) as child processes on
loopback, for the load and the database-fault benchmarks, started by the code that starts
the whole stack (:class:`ptychoagent.stack.Stack`: each its own uvicorn, as ``ptychoagent
serve`` runs them, checked to be the process it started). The agent is not started
(nothing here needs vLLM): its URL points at a port nothing listens on.

::

    with Gateway(database_url, state_dir) as gateway:
        key = gateway.key(["predict", "feedback"])
        httpx.post(gateway.url + "/v1/diagnose", ...)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

from ptychoagent.stack import Stack, StackSettings

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


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
        ports = {"diagnosis": free_port(), "gateway": free_port()}
        settings = StackSettings(
            root=ROOT, state_dir=state_dir, host=HOST, ports=ports, ready_timeout_s=120
        )
        self.stack = Stack(settings)
        self.stack.database_url = database_url

    @property
    def url(self) -> str:
        return self.stack.gateway_url

    def __enter__(self) -> Self:
        stack = self.stack
        try:
            classifier = str(ROOT / "artifacts/classifiers/physics-v1")
            stack.spawn("diagnosis", {"DIAGNOSIS_CLASSIFIER": classifier})
            stack.wait_ready("diagnosis", "/readyz")
            environment = {
                "GATEWAY_DATABASE_URL": self.database_url,
                "GATEWAY_DIAGNOSIS__BASE_URL": stack.settings.url("diagnosis"),
                "GATEWAY_AGENT__BASE_URL": f"http://{HOST}:{free_port()}",
                "GATEWAY_REPORTS_DIR": str(self.state_dir / "reports"),
            }
            stack.spawn("gateway", environment, workers=self.workers)
            stack.wait_ready("gateway", "/healthz")
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
        return self.stack.make_key(scopes, f"bench-{'-'.join(scopes)}")

    def stop(self) -> None:
        """SIGTERM to each process group, SIGKILL after 15 s."""
        self.stack.stop()


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
