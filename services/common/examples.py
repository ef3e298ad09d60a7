"""Where a model service gets its few-shot examples.

Both sources answer :class:`ExampleSource` with ready-made example turns
(``ptychobench.prompts.Example``: text, answer and, for detection, the image bytes):

- :class:`RetrieverExamples` asks the retriever service over HTTP (the deployed shape:
  one pool in the project database, grown by expert feedback, with the ``semantic``
  strategy);
- :class:`DatasetExamples` selects in-process from a release-layout dataset's training
  split with ``ptychobench.selection`` (no retriever needed; SSFS and RFS only).

For the same pool, seed and strategy both give the same examples.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import httpx

from ptychobench.data import Sample, read_release
from ptychobench.labels import Task
from ptychobench.prompts import Example, base64_data_url, example_from_sample
from ptychobench.selection import Strategy, select_examples
from ptychowire.diagnosis import SampleMeta
from ptychowire.retriever import Query
from services.common.errors import BackendError, InvalidInput
from services.common.settings import UpstreamSettings
from services.common.upstream import BackendObserver, Upstream


def query_sample(meta: SampleMeta | Query) -> Sample:
    """The sample examples are chosen for, from what a diagnosis request or a retriever
    query says of it (:class:`RetrieverExamples` sends it back as a query)."""
    return Sample(
        id=meta.id or "",
        sample_type=meta.sample_type,
        instrument=meta.instrument,
        caption_obj=meta.description,
    )


class ExampleSource(Protocol):
    async def select(
        self,
        task: Task,
        query: Sample,
        k: int,
        strategy: str,
        seed: int,
        request_id: str | None = None,
    ) -> list[Example]: ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


class DatasetExamples:
    """Examples from the training split of a dataset on disk (read once, lazily)."""

    strategies = tuple(Strategy)

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
        self,
        task: Task,
        query: Sample,
        k: int,
        strategy: str,
        seed: int,
        request_id: str | None = None,
    ) -> list[Example]:
        if k == 0:
            return []
        if strategy not in self.strategies:
            raise InvalidInput(
                f"strategy {strategy!r} needs the retriever service; in-process selection "
                f"offers {', '.join(self.strategies)}"
            )
        pool = (await asyncio.to_thread(self._load)).get(task, ())
        if not pool:
            raise InvalidInput(f"the example pool has no {task.value} examples")
        chosen = select_examples(query, pool, k, Strategy(strategy), seed)
        return await asyncio.to_thread(lambda: [example_from_sample(s, task) for s in chosen])

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self._load)
        except (OSError, ValueError):
            return False
        return True

    async def aclose(self) -> None:
        return None


def _example(task: Task, item: dict[str, Any]) -> Example:
    sample = Sample(
        id=item["id"],
        sample_type=item["sample_type"],
        instrument=item["instrument"],
        beam=item["beam"],
        package=item["package"],
        artifacts=tuple(item["artifacts"]),
        options=tuple(item["options"]),
        caption_obj=item["description"],
        caption_param=item["parameters_description"],
        parameters=item["parameters"],
    )
    image = item.get("image_base64")
    # passed through as the data URL the prompt holds: never decoded and encoded again
    return example_from_sample(sample, task, base64_data_url(image) if image else None)


class RetrieverExamples:
    """Examples from the retriever service (``POST /v1/examples/select``), with the
    project's retry policy and circuit breaker."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: BackendObserver | None = None,
    ) -> None:
        self.upstream = Upstream(settings, "the retriever", transport=transport, observer=observer)

    async def select(
        self,
        task: Task,
        query: Sample,
        k: int,
        strategy: str,
        seed: int,
        request_id: str | None = None,
    ) -> list[Example]:
        if k == 0:
            return []
        body = {
            "task": task.value,
            "query": {
                "sample_type": query.sample_type,
                "id": query.id or None,
                "description": query.caption_obj,
                "instrument": query.instrument,
            },
            "k": k,
            "strategy": strategy,
            "seed": seed,
        }
        response, _ = await self.upstream.request(
            "POST", "/v1/examples/select", body, request_id=request_id, label="retriever"
        )
        try:
            return [_example(task, item) for item in response.json()["examples"]]
        except (KeyError, TypeError, ValueError) as error:
            raise BackendError(f"the retriever's answer is not understood: {error}") from error

    async def ready(self) -> bool:
        return await self.upstream.healthy("/readyz")

    async def aclose(self) -> None:
        await self.upstream.aclose()


def example_source(
    retriever: UpstreamSettings | None, dataset: str, observer: BackendObserver | None = None
) -> ExampleSource:
    """The retriever when one is configured, else the dataset's training split in process."""
    if retriever is not None:
        return RetrieverExamples(retriever, observer=observer)
    return DatasetExamples(dataset)
