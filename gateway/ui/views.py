"""What the review page shows, computed from the gateway's records: pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.feedback import Feedback
from gateway.predictions import Prediction
from ptychobench.changes import changes_for
from ptychobench.labels import ARTIFACT_LABELS, OPTIONS, Task, vocabulary

DETECTION_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=")
"""The keys that toggle the twelve detection labels, in ARTIFACT_LABELS order."""


@dataclass(frozen=True)
class Toggle:
    label: str
    text: str
    key: str
    checked: bool


def toggles(task: str, checked: Iterable[str]) -> list[Toggle]:
    """One toggle per label of the task's vocabulary, with its keyboard shortcut."""
    on = set(checked)
    if Task(task) is Task.DETECTION:
        return [
            Toggle(label, label, key, label in on)
            for label, key in zip(ARTIFACT_LABELS, DETECTION_KEYS, strict=True)
        ]
    return [Toggle(letter, text, letter.lower(), letter in on) for letter, text in OPTIONS.items()]


def option_changes(task: str, labels: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The Pty-chi changes of a recommendation's letters (none for a diagnosis)."""
    if Task(task) is not Task.RECOMMENDATION:
        return {}
    return changes_for(label for label in labels if label in OPTIONS)


@dataclass(frozen=True)
class Swap:
    task: str
    predicted: str
    """Predicted, but not true."""
    missed: str
    """True, but not predicted."""
    count: int


def swaps(reviewed: Iterable[tuple[Prediction, Feedback]], top: int = 10) -> list[Swap]:
    """The label pairs most often confused: for each reviewed prediction (at its latest
    review), every pair (a predicted label that is false, a true label that was missed),
    counted over the predictions, most frequent first."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for prediction, feedback in reviewed:
        vocab = vocabulary(prediction.task)
        predicted, truth = set(prediction.labels), set(feedback.labels)
        false = [label for label in vocab if label in predicted - truth]
        missed = [label for label in vocab if label in truth - predicted]
        counts.update((prediction.task, a, b) for a in false for b in missed)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Swap(task, a, b, n) for (task, a, b), n in ranked[:top]]


@dataclass(frozen=True)
class LetterRow:
    """A letter the agent proposed in a refinement round, and what became of it."""

    letter: str
    text: str
    applied: bool
    reason: str | None
    """Why it was skipped (None when applied)."""
    changes: list[dict[str, Any]]


def round_letters(
    letters: Iterable[str], applied: Iterable[str], skipped: dict[str, str]
) -> list[LetterRow]:
    """A round's letters in the agent's order: applied ones with their Pty-chi changes,
    skipped ones with the reason."""
    done = set(applied)
    chosen = [letter for letter in letters if letter in OPTIONS]
    changes = changes_for(chosen)
    return [
        LetterRow(
            letter,
            OPTIONS.get(letter, letter),
            letter in done,
            None if letter in done else skipped.get(letter, "not applied"),
            changes.get(letter, []),
        )
        for letter in letters
    ]


@dataclass(frozen=True)
class MetricRow:
    name: str
    before: float | None
    after: float | None


def metric_rows(before: dict[str, float], after: dict[str, float] | None) -> list[MetricRow]:
    """The no-reference metrics before and after a round's change, by name."""
    later = after or {}
    return [MetricRow(n, before.get(n), later.get(n)) for n in sorted(set(before) | set(later))]
