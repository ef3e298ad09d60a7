from __future__ import annotations

import random
from collections import Counter

import pytest

from ptychobench.data.dataset import Dataset, paper_split, split_samples
from ptychobench.data.sample import Sample
from ptychobench.labels import ARTIFACT_LABELS, Task


def _population(sizes: dict[str, int]) -> list[Sample]:
    return [
        Sample(id=f"{name}-{i:03d}", sample_type=name, caption_param="x" * (i % 2))
        for name, size in sizes.items()
        for i in range(size)
    ]


# 18 sample types, 391 samples, uneven like the paper's
SIZES = {
    f"type {chr(65 + t)}": size
    for t, size in enumerate([60, 45, 40, 35, 30, 28, 25, 22, 20, 18, 15, 12, 10, 10, 8, 6, 5, 2])
}


def test_split_has_the_paper_sizes_and_is_stratified() -> None:
    samples = _population(SIZES)
    assert len(samples) == 391
    train, test = split_samples(samples, test_fraction=0.2, seed=0)
    assert (len(train), len(test)) == (312, 79)
    assert {s.id for s in train} | {s.id for s in test} == {s.id for s in samples}
    assert {s.id for s in train}.isdisjoint(s.id for s in test)
    per_type = Counter(s.sample_type for s in test)
    for name, size in SIZES.items():
        assert abs(per_type[name] - 0.2 * size) < 1
    assert {s.split for s in train} == {"train"}
    assert {s.split for s in test} == {"test"}
    order = [s.id for s in samples]
    assert [s.id for s in train] == [i for i in order if i in {s.id for s in train}]


def test_split_is_deterministic_and_independent_of_input_order() -> None:
    samples = _population(SIZES)
    shuffled = list(samples)
    random.Random(7).shuffle(shuffled)
    ids = {s.id for s in split_samples(samples, seed=3)[1]}
    assert ids == {s.id for s in split_samples(shuffled, seed=3)[1]}
    assert ids != {s.id for s in split_samples(samples, seed=4)[1]}


def test_split_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        split_samples(_population({"a": 4}), test_fraction=1.0)
    with pytest.raises(ValueError, match="unique"):
        split_samples([Sample(id="a"), Sample(id="a")])


def test_paper_split_takes_the_advised_samples_after_splitting() -> None:
    dataset = paper_split(_population(SIZES), seed=0)
    for split in ("train", "test"):
        detection = dataset.samples(Task.DETECTION, split)
        advised = tuple(s for s in detection if s.caption_param)
        assert dataset.samples(Task.RECOMMENDATION, split) == advised
        assert 0 < len(advised) < len(detection)


def test_dataset_names_the_split_of_its_samples() -> None:
    dataset = Dataset(detection={"train": (Sample(id="a"),)})
    assert dataset.samples("detection", "train")[0].split == "train"
    with pytest.raises(ValueError, match="listed in 'test'"):
        Dataset(detection={"test": (Sample(id="a", split="train"),)})
    with pytest.raises(KeyError, match="no 'val' split"):
        dataset.samples(Task.DETECTION, "val")
    assert dataset.splits(Task.RECOMMENDATION) == ()


def test_counts() -> None:
    samples = (
        Sample(id="1", sample_type="IC", instrument="XFM", artifacts=("Halo artifacts",)),
        Sample(
            id="2", sample_type="IC", instrument="XFM", artifacts=("Halo artifacts", "Blurring")
        ),
        Sample(id="3", sample_type="Star", instrument="Velo", options=("K",)),
    )
    counts = Dataset(
        detection={"train": samples[:2], "test": samples[2:]},
        recommendation={"test": samples[2:]},
    ).counts()
    train = counts["detection"]["train"]
    assert (train["samples"], train["label_instances"]) == (2, 3)
    assert list(train["labels"]) == list(ARTIFACT_LABELS)
    assert train["labels"]["Halo artifacts"] == 2
    assert train["sample_types"] == {"IC": 2}
    assert counts["detection"]["test"]["instruments"] == {"Velo": 1}
    assert counts["recommendation"]["test"]["labels"]["K"] == 1
    assert counts["recommendation"]["test"]["label_instances"] == 1
