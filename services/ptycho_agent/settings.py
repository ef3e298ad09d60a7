"""Settings of the ptycho_agent service (env prefix ``AGENT_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import BackendSettings, MaxK, ServiceSettings, UpstreamSettings


class AgentBackendSettings(BackendSettings):
    """The engine, and the agent adapter as the default model (a subclass, so that an
    environment override of one field keeps the others' agent defaults)."""

    model: str = "smollm2-135m-agent"


class AgentSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    backend: AgentBackendSettings = Field(default_factory=AgentBackendSettings)
    retriever: UpstreamSettings | None = None
    """The retriever service (``AGENT_RETRIEVER__BASE_URL``); without one, examples come
    in-process from ``examples_dataset``."""
    examples_dataset: str = "data/ptychobench-sim"
    """A release-layout dataset whose training split is the example pool (when no
    retriever is configured)."""
    max_k: MaxK = 7
    max_tokens: int = Field(default=48, ge=8)
    max_letters: int = Field(default=5, ge=1, le=24)
    constrained: bool = True
    """Hold the answer to ``<answer>`` + letters with structured outputs."""
