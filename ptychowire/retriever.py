"""Requests and responses of the retriever (our API: extra fields refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ptychowire.base import Base64, K, RequestModel, Seed, Strategy
from ptychowire.labels import ArtifactList, OptionList, Task

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"


class Query(RequestModel):
    """The sample examples are chosen for."""

    sample_type: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, max_length=200)
    """The query's id when it is one of the pool's (it is never its own example)."""
    description: str = Field(default="", max_length=4000)
    instrument: str = Field(default="", max_length=200)


class SelectRequest(RequestModel):
    task: Task
    query: Query
    k: K
    strategy: Strategy = Strategy.SSFS
    seed: Seed = 0
    images: bool = True
    """Return detection examples' images (base64)."""


class Example(BaseModel):
    id: str
    task: Task
    sample_type: str
    instrument: str
    beam: str
    package: str
    artifacts: list[str]
    options: list[str]
    description: str
    """The expert's description of the object (``caption_obj``)."""
    parameters_description: str
    """The expert's description of the parameter changes (``caption_param``)."""
    parameters: str
    """The "Current Reconstruction Parameters" block, as in the prompt."""
    answer: str
    """The assistant turn: ``<answer>…</answer>`` with the true labels."""
    split: str
    source: str
    image_base64: Base64 | None = None
    image_sha256: str | None = None


class SelectResponse(BaseModel):
    examples: list[Example]
    task: Task
    strategy: str
    k: int
    seed: int
    pool_size: int
    latency_s: float


class AddExampleRequest(RequestModel):
    """One annotated example: from an ingest, or an expert's correction (``feedback``)."""

    task: Task
    id: str = Field(min_length=1, max_length=200, pattern=ID_PATTERN)
    sample_type: str = Field(min_length=1, max_length=200)
    instrument: str = Field(default="", max_length=200)
    beam: str = Field(default="X-ray", max_length=100)
    package: str = Field(default="pty-chi", max_length=100)
    artifacts: ArtifactList
    options: OptionList
    description: str = Field(default="", max_length=4000)
    parameters_description: str = Field(default="", max_length=4000)
    parameters: str = Field(default="", max_length=20000)
    image_base64: Base64 | None = Field(default=None, max_length=30_000_000)
    split: Literal["train", "test"] = "train"
    source: Literal["dataset", "feedback"] = "feedback"
    origin: str = Field(default="", max_length=500)
    """Where it came from: a dataset path, a prediction id."""


class AddExampleResponse(BaseModel):
    id: str
    task: Task
    created: bool


class PoolCount(BaseModel):
    task: str
    split: str
    source: str
    count: int


class StatsResponse(BaseModel):
    counts: list[PoolCount]
