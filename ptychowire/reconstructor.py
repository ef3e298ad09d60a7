"""Requests and responses of the reconstructor (our API: extra fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
JOB_STATES: tuple[JobState, ...] = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "interrupted",
)
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled", "interrupted"})
Preprocess = Literal["recenter", "transpose"]
Engine = Literal["lsqml", "epie"]  # rPIE diverged and PIE crashed in ptychi 2.2.0
"""The reconstruction engines the reconstructor runs (``ptychobench.sim.reconstruct``)."""


class OptionOverrides(BaseModel):
    """Changes to the experiment's reconstruction options (``ReconConfig`` fields; what
    is left out keeps the experiment's value). Where it runs is the service's setting."""

    model_config = ConfigDict(extra="forbid")

    engine: Engine | None = None
    num_epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    batching_mode: Literal["random", "compact", "uniform"] | None = None
    momentum: float | None = Field(default=None, ge=0)
    multimodal_update: bool | None = None
    position_correction: bool | None = None
    position_step_size: float | None = Field(default=None, gt=0)
    position_update_limit: float | None = Field(default=None, gt=0)
    position_correction_start: int | None = Field(default=None, ge=0)
    affine_constraint: bool | None = None
    n_probe_modes: int | None = Field(default=None, ge=1, le=16)
    n_opr_modes: int | None = Field(default=None, ge=1, le=16)
    probe_update_start: int | None = Field(default=None, ge=0)
    noise_model: Literal["poisson", "gaussian"] | None = None
    tv_weight: float | None = Field(default=None, ge=0)
    smoothness: float | None = Field(default=None, ge=0, le=0.125)
    pie_alpha: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class JobRequest(BaseModel):
    """A reconstruction: the experiment (uploaded as the multipart file part
    ``experiment``, or named by ``experiment_path`` on the server) and changes to its
    options and preprocessing."""

    model_config = ConfigDict(extra="forbid")

    experiment_path: str | None = Field(default=None, max_length=4096)
    """A file under the service's allowed root (relative to it, or absolute)."""
    options: OptionOverrides = Field(default_factory=OptionOverrides)
    preprocess: list[Preprocess] | None = Field(default=None, max_length=4)
    """Replaces the experiment's preprocessing steps when given."""
    name: str = Field(default="", max_length=200)


class Progress(BaseModel):
    epochs_done: int
    epochs_total: int


class JobLinks(BaseModel):
    self: str
    result: str
    image: str
    reconstruction: str


class JobResponse(BaseModel):
    id: str
    state: JobState
    name: str
    progress: Progress
    attempts: int
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class JobResult(BaseModel):
    """A finished reconstruction: the data-fit loss per epoch, the no-reference image
    metrics, and what ran (the options after overrides, the preprocessing, device)."""

    id: str
    losses: list[float]
    final_loss: float | None
    metrics: dict[str, float]
    options: dict[str, Any]
    preprocess: list[str]
    object_shape: list[int]
    probe_shape: list[int]
    phase_range: list[float]
    """The phase (rad) that the PNG's 0 and 255 stand for."""
    device: str
    seconds: float
    experiment: dict[str, Any]
    """Name, sample type, instrument, source and positions of the experiment."""
    links: JobLinks
