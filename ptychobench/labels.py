"""The two fixed vocabularies of PtychoBench.

Artifact detection uses 12 labels (the paper's order); parameter recommendation uses 24
lettered options A–X. Everything that scores, parses or prompts refers to these tuples,
never to the labels that happen to occur in a dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Final

from ptychowire.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    NO_CHANGES,
    OPTION_LETTERS,
    ArtifactLabel,
    OptionLetter,
    Task,
)

__all__ = [
    "ARTIFACT_LABELS",
    "NO_ARTIFACTS",
    "NO_CHANGES",
    "OPTIONS",
    "OPTION_BY_TEXT",
    "OPTION_LETTERS",
    "ArtifactLabel",
    "OptionLetter",
    "Task",
    "canonical_order",
    "describe",
    "null_label",
    "vocabulary",
]


OPTIONS: Final = MappingProxyType(
    {
        "A": "Change number of batches to 1",
        "B": "Disable momentum acceleration",
        "C": "Disable multimodal update",
        "D": "Disable position correction",
        "E": "Enable momentum acceleration",
        "F": "Enable multimodal update",
        "G": "Enable position correction",
        "H": "Increase batch size",
        "I": "Increase number of OPR modes",
        "J": "Increase number of probe modes",
        "K": "Increase the number of iterations",
        "L": "No changes needed",
        "M": "Recenter diffraction patterns",
        "N": "Reduce batch size",
        "O": "Reduce diffraction pattern size by factor of 2",
        "P": "Reduce or disable regularization",
        "Q": "Try other diffraction pattern orientations",
        "R": "Turn off affine constraint",
        "S": "Turn off variable probe correction (set OPR modes to 0)",
        "T": "Turn on variable probe correction (set OPR modes to 1)",
        "U": "Use Gaussian noise model",
        "V": "Use compact batch selection scheme",
        "W": "Use multislice model",
        "X": "Use sparse batch selection scheme",
    }
)
"""Option letter → option text, A–X in order."""

if tuple(OPTIONS) != OPTION_LETTERS:  # pragma: no cover - a typo in either list
    raise ImportError("OPTIONS and ptychowire.labels.OPTION_LETTERS disagree")
OPTION_BY_TEXT: Final = MappingProxyType({text: letter for letter, text in OPTIONS.items()})


def vocabulary(task: Task | str) -> tuple[str, ...]:
    """The fixed label vocabulary of a task: 12 artifact labels or 24 option letters."""
    return ARTIFACT_LABELS if Task(task) is Task.DETECTION else OPTION_LETTERS


def null_label(task: Task | str) -> str:
    """The label that means "nothing to report": "No obvious artifacts" or "L"."""
    return NO_ARTIFACTS if Task(task) is Task.DETECTION else NO_CHANGES


def canonical_order(labels: Iterable[str], task: Task | str) -> list[str]:
    """Deduplicate labels and sort them into vocabulary order; unknown labels raise."""
    vocab = vocabulary(task)
    wanted = set(labels)
    unknown = wanted.difference(vocab)
    if unknown:
        raise ValueError(f"not {Task(task).value} labels: {sorted(unknown)}")
    return [label for label in vocab if label in wanted]


def describe(labels: list[str], task: Task | str) -> list[tuple[str, str]]:
    """(label, human text) pairs: option letters get their option text."""
    if Task(task) is Task.DETECTION:
        return [(label, label) for label in labels]
    return [(letter, OPTIONS[letter]) for letter in labels]
