"""The two fixed vocabularies of PtychoBench as wire types: the tasks, the 12 artifact
labels (the paper's order) and the 24 option letters A–X, and label lists as request
fields, checked against them. The texts of the options live with the data, in
``ptychobench.labels``."""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal, get_args

from pydantic import AfterValidator, Field


class Task(enum.StrEnum):
    """The two PtychoBench tasks."""

    DETECTION = "detection"
    RECOMMENDATION = "recommendation"


ArtifactLabel = Literal[
    "Grid artifacts",
    "Halo artifacts",
    "Line artifacts",
    "Local distortion",
    "Low contrast",
    "No clear structure",
    "Noisy artifacts",
    "Non-uniform background",
    "Phase ramp",
    "Singularity artifacts",
    "Blurring",
    "No obvious artifacts",
]
OptionLetter = Literal[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
    "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X",
]  # fmt: skip

ARTIFACT_LABELS: Final[tuple[str, ...]] = get_args(ArtifactLabel)
OPTION_LETTERS: Final[tuple[str, ...]] = get_args(OptionLetter)
NO_ARTIFACTS: Final = "No obvious artifacts"
NO_CHANGES: Final = "L"


def _known(vocab: tuple[str, ...], what: str, allowed: str) -> AfterValidator:
    def check(value: list[str]) -> list[str]:
        unknown = [label for label in value if label not in vocab]
        if unknown:
            raise ValueError(f"unknown {what}(s) {unknown}; use {allowed}")
        return value

    return AfterValidator(check)


ArtifactList = Annotated[
    list[str],
    Field(default_factory=list, max_length=len(ARTIFACT_LABELS)),
    _known(ARTIFACT_LABELS, "artifact label", str(list(ARTIFACT_LABELS))),
]
"""Artifact labels from the 12 of the detection task."""

OptionList = Annotated[
    list[str],
    Field(default_factory=list, max_length=len(OPTION_LETTERS)),
    _known(OPTION_LETTERS, "option letter", "A–X"),
]
"""Option letters A–X of the recommendation task."""
