"""A benchmark dataset: the samples of both tasks by split, and how the paper split them.

The two tasks hold separate sample tuples because the paper's recommendation set is a
subset of the detection set taken after the 80/20 split (the samples with an expert
recommendation), and because a release stores each task's samples in its own files.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptychobench.data.sample import Sample
from ptychobench.labels import Task, vocabulary


@dataclass(frozen=True)
class JsonStyle:
    """How a JSON file was laid out, so that writing it back gives the same bytes."""

    indent: int | None = 2
    ensure_ascii: bool = False
    trailing_newline: bool = True


@dataclass(frozen=True)
class Dataset:
    """The samples of both tasks, split name → samples in file order.

    A sample whose ``split`` is ``None`` takes the name of the split it is listed under;
    one listed under another split's name is an error. ``metadata`` keeps each task's
    ``metadata.json`` content as read (keyed by task value). ``styles`` records the JSON
    layout of the files read (task → file name → style); it is not part of equality.
    """

    root: Path | None = None
    detection: Mapping[str, tuple[Sample, ...]] = field(default_factory=dict)
    recommendation: Mapping[str, tuple[Sample, ...]] = field(default_factory=dict)
    metadata: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    styles: Mapping[str, Mapping[str, JsonStyle]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for task in Task:
            splits = {
                name: tuple(_with_split(sample, name) for sample in samples)
                for name, samples in self.by_task(task).items()
            }
            object.__setattr__(self, task.value, splits)

    def by_task(self, task: Task | str) -> Mapping[str, tuple[Sample, ...]]:
        """Split name → samples of one task."""
        return self.detection if Task(task) is Task.DETECTION else self.recommendation

    def splits(self, task: Task | str) -> tuple[str, ...]:
        """The split names of a task, in order."""
        return tuple(self.by_task(task))

    def samples(self, task: Task | str, split: str) -> tuple[Sample, ...]:
        """The samples of one split of one task."""
        splits = self.by_task(task)
        if split not in splits:
            raise KeyError(f"no {split!r} split for {Task(task).value}; have {list(splits)}")
        return splits[split]

    def counts(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Task → split → samples, label instances, and counts per label (the whole
        vocabulary, in order), per sample type and per instrument (most frequent first)."""
        return {
            task.value: {
                name: _split_counts(samples, task) for name, samples in self.by_task(task).items()
            }
            for task in Task
        }


def _with_split(sample: Sample, name: str) -> Sample:
    if sample.split is None:
        return sample.model_copy(update={"split": name})
    if sample.split != name:
        raise ValueError(f"sample {sample.id!r} says split {sample.split!r}, listed in {name!r}")
    return sample


def _split_counts(samples: Sequence[Sample], task: Task) -> dict[str, Any]:
    labels = Counter(label for sample in samples for label in sample.labels(task))
    return {
        "samples": len(samples),
        "label_instances": sum(labels.values()),
        "labels": {label: labels[label] for label in vocabulary(task)},
        "sample_types": _ranked(sample.sample_type for sample in samples),
        "instruments": _ranked(sample.instrument for sample in samples),
    }


def _ranked(values: Iterable[str]) -> dict[str, int]:
    counts = Counter(values)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def split_samples(
    samples: Sequence[Sample], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Train and test samples, stratified by sample type, the same for the same inputs.

    As scikit-learn's ``train_test_split``, the test set has ``ceil(n * test_fraction)``
    samples (391 → 312 / 79, as in the paper); they are shared among the sample types in
    proportion to their size (largest remainders get the leftovers) and drawn at random
    inside each type. The result does not depend on the input order; each side keeps
    the input order and carries its split name.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    ids = [sample.id for sample in samples]
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids must be unique to split")
    groups: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.id):
        groups.setdefault(sample.sample_type, []).append(sample)
    quotas = _allocate(
        {name: len(group) for name, group in groups.items()},
        math.ceil(len(samples) * test_fraction),
    )
    test_ids: set[str] = set()
    for name in sorted(groups):
        group = list(groups[name])
        random.Random(f"{seed}\x1f{name}").shuffle(group)
        test_ids.update(sample.id for sample in group[: quotas[name]])
    train = [s.model_copy(update={"split": "train"}) for s in samples if s.id not in test_ids]
    test = [s.model_copy(update={"split": "test"}) for s in samples if s.id in test_ids]
    return train, test


def _allocate(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Share ``total`` among groups in proportion to their sizes (largest remainder)."""
    n = sum(sizes.values())
    exact = {name: size * total / n for name, size in sizes.items()} if n else {}
    quotas = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: (quotas[name] - exact[name], name))
    for name in by_remainder[: total - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


def paper_split(samples: Sequence[Sample], test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The dataset the way the paper made it: all samples split 80/20 by sample type
    for detection; then, on each side, the samples with an expert recommendation
    (non-empty ``caption_param``) form the recommendation split."""
    train, test = split_samples(samples, test_fraction, seed)

    def advised(side: list[Sample]) -> tuple[Sample, ...]:
        return tuple(sample for sample in side if sample.caption_param.strip())

    return Dataset(
        detection={"train": tuple(train), "test": tuple(test)},
        recommendation={"train": advised(train), "test": advised(test)},
    )
