"""Label lists as request fields: checked against the task's vocabulary, with an error
that names the unknown entries and what is allowed."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from ptychobench.labels import ARTIFACT_LABELS, OPTION_LETTERS


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
