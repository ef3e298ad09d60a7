"""PtychoBench as a library: labels, prompts, parsing, metrics, data formats and example
selection for the two tasks of the paper (artifact detection and parameter
recommendation). No web framework and no services are imported here."""

from ptychobench.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    NO_CHANGES,
    OPTION_LETTERS,
    OPTIONS,
    Task,
    vocabulary,
)

__all__ = [
    "ARTIFACT_LABELS",
    "NO_ARTIFACTS",
    "NO_CHANGES",
    "OPTIONS",
    "OPTION_LETTERS",
    "Task",
    "vocabulary",
]
