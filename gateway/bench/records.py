"""What a benchmark run produces: one :class:`ItemResult` per (task, model, strategy, k,
seed, test sample), and the :class:`RunRecord` that says how the run was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ItemResult:
    """One test sample answered by one model configuration.

    ``strategy`` is ``"none"`` where examples do not apply (k = 0, the classifier); the
    report shows such items under every strategy at k = 0. ``error`` is set (and
    ``predicted`` empty) when the item could not be answered after the retries.
    """

    task: str  # "detection" | "recommendation"
    model: str  # the configuration's model name, e.g. "sft", "base", "classifier"
    adapter: str  # what answered: a LoRA adapter, the base model, the classifier
    strategy: str  # "ssfs" | "rfs" | "semantic" | "none"
    k: int
    seed: int
    sample_id: str
    sample_type: str
    truth: tuple[str, ...]  # the true labels (artifact labels or option letters)
    predicted: tuple[str, ...]
    raw_answer: str = ""
    unmapped: tuple[str, ...] = ()  # answer fragments that matched no label
    prediction_id: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    outcome: dict[str, Any] | None = None
    """Closed loop: what the letters did (``ptychobench.closed_loop.Evaluation``: applied,
    skipped, NRMSE before and after, gain, fixed, rounds, reconstructions, seconds)."""
    prompt_sha256: str | None = None
    """The hash of the prompts the item was asked with (``ptychobench.provenance``)."""

    @property
    def parse_failure(self) -> bool:
        return bool(self.unmapped)


@dataclass(frozen=True)
class RunRecord:
    """How a run was made: enough to make it again."""

    run_id: str
    name: str
    config_hash: str
    config: dict[str, Any]
    git_revision: str | None
    dataset: str
    split: str
    started_at: str
    finished_at: str | None
    gateway_url: str
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    """What made it (:func:`gateway.bench.provenance.collect`): adapters and their
    SHA-256, each model's engine URL and served model, prompt version and hash, data set
    hash, package versions, git revision, machine. Empty for runs recorded before."""
