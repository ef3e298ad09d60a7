"""One annotated reconstruction: the unit every reader, writer, prompt and metric shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ptychobench.labels import ARTIFACT_LABELS, OPTION_LETTERS, Task


class Sample(BaseModel):
    """An annotated ptychographic reconstruction.

    ``artifacts`` and ``options`` are kept in vocabulary order without repeats.
    ``parameters`` is the "Current Reconstruction Parameters" block as text, exactly as it
    appears in the recommendation prompt. ``prompt`` keeps a user-turn text read from a
    published file verbatim, so that writing the sample back reproduces it byte for byte;
    it is ``None`` for samples made here (the prompt is then built from the fields).
    Keys a reader did not recognise are kept in ``extra``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    image: Path | None = None
    sample_type: str = "unknown"
    instrument: str = ""
    beam: str = "X-ray"
    package: str = "pty-chi"
    artifacts: tuple[str, ...] = ()
    caption_obj: str = ""
    caption_param: str = ""
    options: tuple[str, ...] = ()
    parameters: str = ""
    split: str | None = None
    prompt: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("artifacts")
    @classmethod
    def _known_artifacts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _in_order(value, ARTIFACT_LABELS, "artifact label")

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _in_order(value, OPTION_LETTERS, "option letter")

    def labels(self, task: Task | str) -> tuple[str, ...]:
        """The ground truth of this sample for a task."""
        return self.artifacts if Task(task) is Task.DETECTION else self.options


def _in_order(value: tuple[str, ...], vocab: tuple[str, ...], what: str) -> tuple[str, ...]:
    unknown = [label for label in value if label not in vocab]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; expected one of {list(vocab)}")
    wanted = set(value)
    return tuple(label for label in vocab if label in wanted)
