"""Ingest of a user's dataset: any format the opener reads, and ``replace`` leaving the
pool that dataset's (the stack's pool after ``run --dataset``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ptychobench.data import Sample, open_dataset
from ptychobench.labels import Task
from services.common.database import make_engine
from services.retriever.ingest import ingest
from services.retriever.store import ExampleStore, NewExample


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExampleStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    yield ExampleStore(engine, refresh_s=0)
    engine.dispose()


def _pool_ids(store: ExampleStore, task: Task) -> set[str]:
    return {sample.id for sample in store.pool(task, "train").samples}


def test_replace_leaves_the_new_datasets_training_split_and_the_feedback(
    store: ExampleStore, handmade: Callable[..., Path]
) -> None:
    ours, theirs = handmade("ours", seed=1), handmade("theirs", kind="labelstudio", seed=2)
    assert ingest(store, ours) == {"inserted": 12 + 8, "updated": 0, "removed": 0}
    feedback = NewExample(
        Sample(id="feedback-1", split="train"), Task.RECOMMENDATION, None, "feedback"
    )
    store.upsert([feedback])

    counts = ingest(store, theirs, replace=True)
    assert counts["removed"] == 12 + 8
    for task in Task:
        train = {s.id for s in open_dataset(theirs).samples(task, "train")}
        expected = train | ({"feedback-1"} if task is Task.RECOMMENDATION else set())
        assert _pool_ids(store, task) == expected

    added = ingest(store, ours)  # without replace, datasets add up
    assert added["removed"] == 0
    assert _pool_ids(store, Task.DETECTION) >= {
        s.id for s in open_dataset(ours).samples(Task.DETECTION, "train")
    }
