"""Settings of the reconstructor (env prefix ``RECONSTRUCTOR_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ptychobench.experiment_io import Limits
from services.common.settings import ServiceSettings


class ReconstructorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECONSTRUCTOR_", env_nested_delimiter="__", extra="forbid"
    )

    workers: int = Field(default=1, ge=1, le=16)
    """Reconstructions run at once (threads; on CPU, one torch thread each)."""
    max_queued: int = Field(default=16, ge=0)
    """Jobs waiting beyond those running; a submission past it gets 503 queue-full."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where Pty-chi runs, whatever the experiment's options say (auto: CUDA if torch
    sees a GPU)."""
    torch_threads: int = Field(default=1, ge=1)
    data_dir: Path = Path("runs/reconstructor")
    """Uploaded experiments and results, one folder per job."""
    allowed_root: Path | None = None
    """Server-side experiments may be named by path only under this folder (unset: only
    uploads are accepted)."""
    max_upload_bytes: int = Field(default=4 * 2**30, ge=1)
    max_positions: int = Field(default=100_000, ge=1)
    max_pattern_px: int = Field(default=2048, ge=8)
    max_object_px: int = Field(default=16_384, ge=8)
    max_pattern_bytes: int = Field(default=8 * 2**30, ge=1)
    max_epochs: int = Field(default=10_000, ge=1)
    job_timeout_s: float | None = Field(default=None, gt=0)
    """A job still running after this long is stopped (at the end of an epoch) and
    failed."""
    max_attempts: int = Field(default=2, ge=1)
    """A job found running at start-up (the service died under it) is queued again
    until it has been started this many times, then marked interrupted."""
    progress_interval_s: float = Field(default=1.0, ge=0)
    """Progress is written to the database at most this often."""

    def limits(self) -> Limits:
        return Limits(
            max_positions=self.max_positions,
            max_pattern_px=self.max_pattern_px,
            max_object_px=self.max_object_px,
            max_pattern_bytes=self.max_pattern_bytes,
        )
