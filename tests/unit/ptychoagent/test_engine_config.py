"""The engine's command line and environment, from its configuration (no server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ptychoagent.engine import EngineConfig, command, environment, load_config

ROOT = Path(__file__).resolve().parents[3]


def test_cpu_threads_bind_pins_an_engine_to_its_own_cores() -> None:
    basics = {"name": "t", "model": "m", "served_model_name": "m"}
    config = EngineConfig(**basics, cpu_threads_bind="1")
    assert environment(config)["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    unpinned = environment(EngineConfig(**basics))
    assert unpinned.get("VLLM_CPU_OMP_THREADS_BIND") == os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    with pytest.raises(ValidationError):
        EngineConfig(**basics, cpu_threads_bind="1; rm -rf /")


def test_image_limits_reach_the_command_line() -> None:
    config = load_config(ROOT / "deploy" / "vllm" / "cpu.yaml").model_copy(
        update={"limit_mm_per_prompt": {"image": 8}}
    )
    argv = command(config, Path("python"), None)
    assert argv[argv.index("--limit-mm-per-prompt") + 1] == '{"image": 8}'
