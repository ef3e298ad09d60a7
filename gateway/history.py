"""Reading predictions back: each with its provenance, its reviews and its image."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gateway.feedback import Feedback
from gateway.predictions import Prediction
from ptychobench.labels import describe
from ptychowire.gateway import FeedbackEntry, LabelText, PredictionRecord
from services.common.errors import NotFound

if TYPE_CHECKING:
    from gateway.store import PredictionStore


class History:
    def __init__(self, store: PredictionStore) -> None:
        self.store = store

    @staticmethod
    def record(prediction: Prediction, feedback: list[Feedback]) -> PredictionRecord:
        return PredictionRecord(
            id=prediction.id,
            created_at=prediction.created_at,
            kind=prediction.kind,
            task=prediction.task,
            analysis_id=prediction.analysis_id,
            sample_type=prediction.sample_type,
            instrument=prediction.instrument,
            labels=[
                LabelText(label=label, text=text)
                for label, text in describe(prediction.labels, prediction.task)
            ],
            raw_answer=prediction.raw_answer,
            unmapped=prediction.unmapped,
            scores=prediction.scores,
            backend=prediction.backend,
            adapter=prediction.adapter,
            service_url=prediction.service_url,
            prompt_version=prediction.prompt_version,
            prompt_hash=prediction.prompt_hash,
            example_ids=prediction.example_ids,
            seed=prediction.seed,
            k=prediction.k,
            strategy=prediction.strategy,
            latency_s=prediction.latency_s,
            backend_latency_s=prediction.backend_latency_s,
            prompt_tokens=prediction.prompt_tokens,
            completion_tokens=prediction.completion_tokens,
            request=prediction.request,
            image_sha256=prediction.image_sha256,
            feedback=[FeedbackEntry.model_validate(f, from_attributes=True) for f in feedback],
        )

    async def prediction(self, prediction_id: str) -> PredictionRecord:
        def read() -> PredictionRecord:
            return self.record(self.store.get(prediction_id), self.store.feedback(prediction_id))

        return await asyncio.to_thread(read)

    async def predictions(self, limit: int, **filters: Any) -> list[PredictionRecord]:
        def read() -> list[PredictionRecord]:
            found = self.store.recent(limit, **filters)
            feedback = self.store.feedback_for(p.id for p in found)
            return [self.record(p, feedback[p.id]) for p in found]

        return await asyncio.to_thread(read)

    async def image(self, prediction_id: str) -> tuple[bytes, str]:
        def read() -> tuple[bytes, str]:
            prediction = self.store.get(prediction_id)
            if prediction.image_sha256 is None:
                raise NotFound(f"prediction {prediction_id!r} has no image (a recommendation)")
            return self.store.image_with_format(prediction.image_sha256)

        return await asyncio.to_thread(read)
