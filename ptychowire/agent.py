"""Requests and responses of the ptycho_agent service (our API: extra fields refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ptychowire.base import ADAPTER_PATTERN, K, RequestModel, Seed, Strategy
from ptychowire.labels import ArtifactList


class SampleInfo(RequestModel):
    """The paper's *SAMPLE INFORMATION* block."""

    package: str = Field(default="pty-chi", max_length=100)
    instrument: str = Field(min_length=1, max_length=200)
    sample_type: str = Field(min_length=1, max_length=200)
    beam: str = Field(default="X-ray", max_length=100)
    description: str = Field(default="", max_length=4000)
    """The expert's description of the reconstruction (caption)."""
    artifacts: ArtifactList
    """Observed artifacts, from the 12 detection labels."""
    parameters: dict[str, str] = Field(default_factory=dict, max_length=100)
    """Current reconstruction parameters, ``name: value`` as in the prompt."""


class RecommendRequest(RequestModel):
    sample: SampleInfo
    sample_id: str | None = Field(default=None, max_length=200)
    """The sample's id when it is one of the pool's (never shown as its own example)."""
    k: K = 0
    strategy: Strategy = Strategy.SSFS
    """``semantic`` needs the retriever service."""
    adapter: str | None = Field(default=None, max_length=200, pattern=ADAPTER_PATTERN)
    """The served model or LoRA adapter (default: the service's)."""
    seed: Seed = 0


class OptionChange(BaseModel):
    target: Literal["option", "probe", "data"]
    path: str
    op: Literal["set", "multiply", "divide", "add"]
    value: Any
    note: str = ""


class Recommendation(BaseModel):
    letter: str
    text: str
    changes: list[OptionChange]


class RecommendResponse(BaseModel):
    recommendations: list[Recommendation]
    letters: list[str]
    raw_answer: str
    unmapped: list[str]
    """Answer fragments that matched no option (parse failures)."""
    adapter: str
    k: int
    strategy: str
    seed: int
    example_ids: list[str]
    prompt_version: str
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    backend_latency_s: float
    latency_s: float
