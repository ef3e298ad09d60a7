"""What the beamline sends the gateway and what it gets back (our API: extra fields
refused). The diagnosis and recommendation answers are the services' own, plus the
prediction id under which the gateway stored them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ptychowire.agent import RecommendResponse
from ptychowire.base import ADAPTER_PATTERN, Base64, K, RequestModel, Seed, Strategy
from ptychowire.diagnosis import Backend, DiagnoseOptions, DiagnoseResponse


class LabelText(BaseModel):
    label: str
    text: str


class DiagnosisAnswer(DiagnoseResponse):
    prediction_id: str
    artifacts: list[LabelText]
    """The detected labels with their texts (the label is its own text)."""


class RecommendationAnswer(RecommendResponse):
    prediction_id: str


class AnalyzeSample(RequestModel):
    """The sample, as the diagnosis and the recommendation prompts need it."""

    sample_type: str = Field(min_length=1, max_length=200)
    instrument: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    parameters: dict[str, str] = Field(default_factory=dict, max_length=100)
    """Current reconstruction parameters, ``name: value``."""
    package: str = Field(default="pty-chi", max_length=100)
    beam: str = Field(default="X-ray", max_length=100)
    id: str | None = Field(default=None, max_length=200)


class DiagnoseStep(RequestModel):
    k: K = 0
    strategy: Strategy = Strategy.SSFS
    backend: Backend | None = None
    adapter: str | None = Field(default=None, max_length=200, pattern=ADAPTER_PATTERN)
    seed: Seed = 0


class RecommendStep(RequestModel):
    k: K = 0
    strategy: Strategy = Strategy.SSFS
    adapter: str | None = Field(default=None, max_length=200, pattern=ADAPTER_PATTERN)
    seed: Seed = 0


class AnalyzeOptions(RequestModel):
    """Everything but the image (the ``request`` field of a multipart upload)."""

    sample: AnalyzeSample
    diagnosis: DiagnoseStep = Field(default_factory=DiagnoseStep)
    recommendation: RecommendStep = Field(default_factory=RecommendStep)

    def diagnose_options(self) -> DiagnoseOptions:
        return DiagnoseOptions.model_validate(
            {
                **self.diagnosis.model_dump(),
                "sample": {
                    "sample_type": self.sample.sample_type,
                    "instrument": self.sample.instrument,
                    "description": self.sample.description,
                    "id": self.sample.id,
                },
            }
        )


class AnalyzeRequest(AnalyzeOptions):
    image_base64: Base64 = Field(min_length=1, max_length=40_000_000)


class Analysis(BaseModel):
    """Diagnose, then recommend with the detected artifacts as "Observed Artifacts"."""

    analysis_id: str
    diagnosis: DiagnosisAnswer
    recommendation: RecommendationAnswer
    latency_s: float


class FeedbackRequest(RequestModel):
    labels: list[str] = Field(max_length=24)
    """The true labels: artifact labels for a diagnosis, option letters for a
    recommendation. ``["No obvious artifacts"]`` / ``["L"]`` when there is nothing."""
    expert: str | None = Field(default=None, max_length=200)
    """Who reviewed (default: the API key's name)."""
    comment: str = Field(default="", max_length=4000)
    add_to_pool: bool = False
    """Also add the sample with these labels to the retriever's example pool."""


class Outcomes(BaseModel):
    tp: list[str]
    fp: list[str]
    fn: list[str]


class FeedbackResponse(BaseModel):
    feedback_id: int
    prediction_id: str
    task: str
    labels: list[str]
    expert: str
    outcomes: Outcomes
    """How the prediction fared against these labels."""
    replaces: int | None
    """The earlier feedback this one supersedes (its outcomes were retracted)."""
    added_to_pool: bool
    pool_error: str | None = None
    """Why the sample could not be added to the example pool (the feedback is kept)."""
    created_at: datetime


class FeedbackEntry(BaseModel):
    id: int
    labels: list[str]
    expert: str
    comment: str
    added_to_pool: bool
    created_at: datetime


class PredictionRecord(BaseModel):
    """A stored prediction with its provenance and its reviews."""

    id: str
    created_at: datetime
    kind: str
    task: str
    analysis_id: str | None
    sample_type: str
    instrument: str
    labels: list[LabelText]
    raw_answer: str
    unmapped: list[str]
    scores: dict[str, float] | None
    backend: str
    adapter: str
    service_url: str
    prompt_version: str | None
    prompt_hash: str | None
    example_ids: list[str]
    seed: int
    k: int
    strategy: str
    latency_s: float
    backend_latency_s: float
    prompt_tokens: int
    completion_tokens: int
    request: dict[str, Any]
    image_sha256: str | None
    feedback: list[FeedbackEntry]


class ClassScore(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class LiveScore(BaseModel):
    task: str
    adapter: str
    reviewed: int
    micro_f1: float
    micro_precision: float
    micro_recall: float
    per_class: list[ClassScore]


class LiveF1Response(BaseModel):
    """Micro-F1 over the reviewed predictions (each at its latest feedback)."""

    since: datetime | None
    scores: list[LiveScore]


class BenchRun(BaseModel):
    """A benchmark run and how far it is."""

    id: str
    name: str
    status: str
    """running, finished, failed (a configuration error: see message) or interrupted."""
    total: int
    done: int
    failed: int
    message: str
    config_hash: str
    config: dict[str, Any]
    git_revision: str | None
    micro_f1: dict[str, float]
    """Running micro-F1 per task over the items answered so far."""
    report: str | None
    """Where the report is, once written (``GET /v1/benchmarks/{id}/report``)."""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
