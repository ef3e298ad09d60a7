"""Filling the store from a dataset in the authors' release layout (or PtychoBench-Sim,
which is written in it): every split of both tasks, images for detection."""

from __future__ import annotations

from pathlib import Path

from ptychobench.data import read_release
from ptychobench.labels import Task
from services.retriever.store import ExampleStore, NewExample


def release_examples(root: str | Path) -> list[NewExample]:
    """The examples of a release-layout dataset (each split recorded on its rows)."""
    root = Path(root)
    dataset = read_release(root)
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


def ingest(store: ExampleStore, root: str | Path) -> dict[str, int]:
    """Upsert a dataset into the store; returns how many rows were inserted and updated."""
    store.create_schema()
    inserted, updated = store.upsert(release_examples(root))
    return {"inserted": inserted, "updated": updated}
