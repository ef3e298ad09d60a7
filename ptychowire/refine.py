"""What ``POST /v1/refine`` takes and what its job answers (our API: extra fields
refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ptychowire.base import Base64, RequestModel
from ptychowire.gateway import DiagnoseStep, RecommendStep

RefineState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]


class RuleSettings(RequestModel):
    """The acceptance rule's thresholds (``ptychobench.refine.AcceptanceRule``)."""

    max_loss_rise: float = Field(default=0.05, ge=0, le=10)
    min_metric_gain: float = Field(default=0.10, ge=0, le=10)


class RefineRequest(RequestModel):
    """A closed-loop refinement: the experiment (multipart file part ``experiment``, or
    ``experiment_path`` under the gateway's dataset roots), what the sample is, and how
    the models are asked."""

    experiment_path: str | None = Field(default=None, max_length=4096)
    sample_type: str = Field(min_length=1, max_length=200)
    instrument: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    max_rounds: int = Field(default=3, ge=1, le=20)
    diagnosis: DiagnoseStep = Field(default_factory=DiagnoseStep)
    recommendation: RecommendStep = Field(default_factory=RecommendStep)
    rule: RuleSettings = Field(default_factory=RuleSettings)
    image_base64: Base64 | None = Field(default=None, max_length=40_000_000)
    """An existing reconstruction's image: diagnosed in place of the first
    reconstruction's (also the multipart file part ``image``)."""


class RoundReviewRequest(RequestModel):
    verdict: Literal["confirm", "reject"]
    """confirm: the change did help; reject: it did not (whatever the loop decided)."""
    expert: str | None = Field(default=None, max_length=200)
    comment: str = Field(default="", max_length=4000)


class RoundReviewEntry(BaseModel):
    id: int
    verdict: str
    expert: str
    comment: str
    created_at: datetime


class RoundReviewResponse(RoundReviewEntry):
    round_id: str
    agrees: bool
    """Whether the expert agrees with the loop (confirm an accepted round, or reject a
    rejected one)."""


class RefineRound(BaseModel):
    id: str
    number: int
    outcome: str
    adapter: str
    letters: list[str]
    applied: list[str]
    skipped: dict[str, str]
    options_before: dict[str, Any]
    options_after: dict[str, Any] | None
    options_diff: dict[str, Any]
    preprocess_before: list[str]
    preprocess_after: list[str] | None
    artifacts_before: list[str]
    artifacts_after: list[str] | None
    metrics_before: dict[str, float]
    metrics_after: dict[str, float] | None
    loss_before: float | None
    loss_after: float | None
    verdict: dict[str, Any] | None
    image_before_sha256: str | None
    image_after_sha256: str | None
    diagnose_before_id: str | None
    recommend_id: str | None
    diagnose_after_id: str | None
    recon_before_job: str | None
    recon_after_job: str | None
    provenance: dict[str, Any]
    seconds: float
    created_at: datetime
    reviews: list[RoundReviewEntry] = Field(default_factory=list)


class RefineJobResponse(BaseModel):
    id: str
    state: RefineState
    outcome: str | None
    """How a finished loop ended: clean (no artifacts left), rejected (a change did not
    help), unchanged (no recommended letter could be applied), max-rounds."""
    sample_type: str
    instrument: str
    max_rounds: int
    rounds_done: int
    attempts: int
    cancel_requested: bool
    error: str | None
    progress: dict[str, Any]
    experiment_sha256: str
    request: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    rounds: list[RefineRound] = Field(default_factory=list)
    links: dict[str, str]
