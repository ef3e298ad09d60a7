"""Few-shot example selection over the stored pool: SSFS, RFS and semantic."""

from __future__ import annotations

import asyncio
import base64
import time

from ptychobench.data import Sample
from ptychobench.labels import Task
from ptychobench.prompts import format_answer, image_data_url
from ptychobench.selection import Strategy
from ptychowire.retriever import (
    AddExampleRequest,
    AddExampleResponse,
    Example,
    PoolCount,
    SelectRequest,
    SelectResponse,
    StatsResponse,
)
from services.common.encoding import decode_base64
from services.common.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from services.common.examples import query_sample
from services.common.settings import check_k
from services.retriever.selection import OrderCache
from services.retriever.semantic import SemanticIndex
from services.retriever.settings import RetrieverSettings
from services.retriever.store import ExampleStore, NewExample, StoredExample


def example_out(stored: StoredExample) -> Example:
    sample = stored.sample
    return Example(
        id=sample.id,
        task=stored.task,
        sample_type=sample.sample_type,
        instrument=sample.instrument,
        beam=sample.beam,
        package=sample.package,
        artifacts=list(sample.artifacts),
        options=list(sample.options),
        description=sample.caption_obj,
        parameters_description=sample.caption_param,
        parameters=sample.parameters,
        answer=format_answer(sample.labels(stored.task), stored.task),
        split=sample.split or "train",
        source=stored.source,
        image_base64=base64.b64encode(stored.image).decode() if stored.image else None,
        image_sha256=stored.image_sha256,
    )


class RetrieverService:
    def __init__(
        self,
        store: ExampleStore,
        settings: RetrieverSettings,
        semantic: SemanticIndex | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.semantic = semantic
        self.orders = OrderCache(settings.order_cache_size)

    async def select(self, request: SelectRequest) -> SelectResponse:
        return await asyncio.to_thread(self.select_sync, request)

    def select_sync(self, request: SelectRequest) -> SelectResponse:
        """Selection, synchronously (the benchmark measures this)."""
        started = time.perf_counter()
        check_k(request.k, self.settings.max_k)
        pool = self.store.pool(request.task, self.settings.pool_split)
        if request.k and not pool.samples:
            raise InvalidInput(
                f"the example pool has no {request.task.value} examples in split "
                f"{self.settings.pool_split!r}; ingest a dataset first "
                "(ptychoagent retriever ingest DIR)"
            )
        query = query_sample(request.query)
        if request.strategy == "semantic":
            if self.semantic is None:
                raise InvalidInput("the semantic strategy is switched off on this retriever")
            ids = self.semantic.select(pool, query, request.k, request.seed)
        else:
            ids = self.orders.select(
                pool, query, request.k, Strategy(request.strategy), request.seed
            )
        images = request.images and request.task is Task.DETECTION
        examples = self.store.fetch(request.task, ids, images=images)
        return SelectResponse(
            examples=[example_out(e) for e in examples],
            task=request.task,
            strategy=request.strategy,
            k=len(examples),
            seed=request.seed,
            pool_size=len(pool),
            latency_s=round(time.perf_counter() - started, 6),
        )

    async def add(self, request: AddExampleRequest) -> AddExampleResponse:
        image = self._image(request)
        sample = Sample(
            id=request.id,
            sample_type=request.sample_type,
            instrument=request.instrument,
            beam=request.beam,
            package=request.package,
            artifacts=tuple(request.artifacts),
            options=tuple(request.options),
            caption_obj=request.description,
            caption_param=request.parameters_description,
            parameters=request.parameters,
            split=request.split,
        )
        new = NewExample(sample, request.task, image, request.source, request.origin)
        inserted, _ = await asyncio.to_thread(self.store.upsert, [new])
        return AddExampleResponse(id=request.id, task=request.task, created=bool(inserted))

    async def stats(self) -> StatsResponse:
        counts = await asyncio.to_thread(self.store.counts)
        return StatsResponse(counts=[PoolCount(**c) for c in counts])

    def _image(self, request: AddExampleRequest) -> bytes | None:
        if request.image_base64 is None:
            if request.task is Task.DETECTION:
                raise InvalidInput("a detection example needs its image (image_base64)")
            return None
        if request.task is Task.RECOMMENDATION:
            raise InvalidInput("recommendation examples carry no image")
        image = decode_base64(request.image_base64)
        if len(image) > self.settings.max_image_bytes:
            raise PayloadTooLarge(
                f"the image has {len(image)} bytes; this retriever takes at most "
                f"{self.settings.max_image_bytes}"
            )
        try:
            image_data_url(image)
        except ValueError as error:
            raise UnsupportedMediaType(
                f"the image is not PNG, JPEG, TIFF or GIF: {error}"
            ) from error
        return image
