"""Filling the store from a dataset: a release directory (the authors' layout, or
PtychoBench-Sim, which is written in it) or a Label Studio export, whatever
``ptychobench.data.open_dataset`` opens. Every split of both tasks goes in, images for
detection; selection draws from the pool split only (``RETRIEVER_POOL_SPLIT``)."""

from __future__ import annotations

from pathlib import Path

from ptychobench.data import open_dataset
from ptychobench.labels import Task
from services.retriever.store import ExampleStore, NewExample


def release_examples(root: str | Path) -> list[NewExample]:
    """The examples of a dataset (each split recorded on its rows)."""
    root = Path(root)
    dataset = open_dataset(root)
    examples = []
    for task in Task:
        for split in dataset.splits(task):
            for sample in dataset.samples(task, split):
                image = None
                if task is Task.DETECTION:
                    if sample.image is None:
                        raise ValueError(f"{root}: detection sample {sample.id!r} has no image")
                    image = sample.image.read_bytes()
                stored = sample.model_copy(update={"image": None, "split": split})
                examples.append(NewExample(stored, task, image, "dataset", str(root)))
    return examples


def ingest(store: ExampleStore, root: str | Path, *, replace: bool = False) -> dict[str, int]:
    """Upsert a dataset into the store; returns how many rows were inserted, updated and
    (with ``replace``) removed.

    ``replace`` makes the dataset the store's only dataset: rows that an earlier ingest of
    another dataset left (source ``dataset``, not in this one) are removed; expert
    feedback stays. Without it, datasets add up (an id already there is updated).
    """
    examples = release_examples(root)
    store.create_schema()
    inserted, updated = store.upsert(examples)
    removed = store.remove_datasets_except(examples) if replace else 0
    return {"inserted": inserted, "updated": updated, "removed": removed}
