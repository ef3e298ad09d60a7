"""Where a model service gets its few-shot examples.

:class:`DatasetExamples` selects in-process from a release-layout dataset's training
split with ``ptychobench.selection`` (SSFS/RFS: nested, deterministic, never the query).
The retriever service (its own issue) is the other source; both answer
:class:`ExampleSource`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from ptychobench.data import Sample, read_release
from ptychobench.labels import Task
from ptychobench.selection import Strategy, select_examples
from services.common.errors import InvalidInput


class ExampleSource(Protocol):
    async def select(
        self, task: Task, query: Sample, k: int, strategy: str, seed: int
    ) -> list[Sample]: ...

    async def ready(self) -> bool: ...


class DatasetExamples:
    """Examples from the training split of a dataset on disk (read once, lazily)."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.split = split
        self._pool: dict[Task, tuple[Sample, ...]] | None = None

    def _load(self) -> dict[Task, tuple[Sample, ...]]:
        if self._pool is None:
            dataset = read_release(self.root)
            self._pool = {
                task: dataset.samples(task, self.split)
                for task in Task
                if self.split in dataset.splits(task)
            }
        return self._pool

    async def select(
        self, task: Task, query: Sample, k: int, strategy: str, seed: int
    ) -> list[Sample]:
        if k == 0:
            return []
        pool = (await asyncio.to_thread(self._load)).get(task, ())
        if not pool:
            raise InvalidInput(f"the example pool has no {task.value} examples")
        return select_examples(query, pool, k, Strategy(strategy), seed)

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self._load)
        except (OSError, ValueError):
            return False
        return True
