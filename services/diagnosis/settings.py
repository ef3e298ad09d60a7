"""Settings of the diagnosis service (env prefix ``DIAGNOSIS_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import BackendSettings, MaxK, ServiceSettings, UpstreamSettings


class DiagnosisBackendSettings(BackendSettings):
    """The VLM engine, and the diagnosis adapter as the default model."""

    base_url: str = "http://127.0.0.1:8012"
    model: str = "vlm-diagnosis"


class DiagnosisSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIAGNOSIS_", env_nested_delimiter="__", extra="forbid"
    )

    default_backend: Literal["vlm", "classifier"] = "classifier"
    """What answers when a request does not say: the frozen-feature classifier (in
    process, the embedded default) or the vision-language model on the engine."""
    backend: DiagnosisBackendSettings = Field(default_factory=DiagnosisBackendSettings)
    classifier: str = "classifiers/physics-v1"
    """The trained classifier's folder (``ptychoagent train classifier``)."""
    retriever: UpstreamSettings | None = None
    """The retriever service; without one, examples come from ``examples_dataset``."""
    examples_dataset: str = "data/ptychobench-sim"
    max_k: MaxK = 7
    """Example images per prompt; the engine's ``--limit-mm-per-prompt`` must allow
    ``max_k + 1`` (the query's image too)."""
    max_tokens: int = Field(default=64, ge=8)
    max_labels: int = Field(default=5, ge=1, le=12)
    constrained: bool = True
    """Hold the answer to ``<answer>[labels]</answer>`` with structured outputs."""
    max_image_bytes: int = Field(default=20_000_000, ge=1)
    max_pixels: int = Field(default=4096 * 4096, ge=256)
