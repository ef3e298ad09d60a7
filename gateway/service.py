"""What the gateway does, room by room: forward to the diagnosis and agent services and
keep every answer with its provenance (:mod:`gateway.predictions`), read them back
(:mod:`gateway.history`), replay Idempotency-Keys (:mod:`gateway.idempotency`), take
expert feedback into live F1 (:mod:`gateway.feedback`) and, on request, into the
retriever's example pool (:mod:`gateway.pool`).

:class:`GatewayService` holds the rooms together for the routes, the benchmark runner and
the closed loop; each of its methods is one room's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from gateway.feedback import Reviews
from gateway.history import History
from gateway.idempotency import Claim, Idempotency
from gateway.keys import ApiKey
from gateway.metrics import GatewayMetrics
from gateway.pool import ExamplePool
from gateway.predictions import Predictions
from gateway.protocol import (
    Analysis,
    AnalyzeOptions,
    DiagnosisAnswer,
    FeedbackRequest,
    FeedbackResponse,
    LiveF1Response,
    PredictionRecord,
    RecommendationAnswer,
)
from gateway.settings import GatewaySettings
from gateway.store import PredictionStore
from services.common.upstream import Upstream
from services.diagnosis.protocol import DiagnoseOptions
from services.ptycho_agent.protocol import RecommendRequest


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        store: PredictionStore,
        metrics: GatewayMetrics,
        diagnosis: Upstream,
        agent: Upstream,
        retriever: Upstream | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.diagnosis = diagnosis
        self.agent = agent
        self.retriever = retriever
        self.idempotency = Idempotency(settings, store)
        self.made = Predictions(settings, store, metrics, diagnosis, agent)
        self.history = History(store)
        pool = None if retriever is None else ExamplePool(store, retriever)
        self.reviews = Reviews(store, metrics, pool)

    async def once(
        self,
        key: ApiKey,
        idempotency_key: str | None,
        endpoint: str,
        fingerprint: str,
        compute: Callable[[Claim | None], Awaitable[BaseModel]],
    ) -> tuple[dict[str, Any], bool]:
        """The answer as JSON, and whether it is a replay (:meth:`Idempotency.once`)."""
        return await self.idempotency.once(key, idempotency_key, endpoint, fingerprint, compute)

    async def diagnose(
        self,
        options: DiagnoseOptions,
        image: bytes,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
        kind: str = "diagnose",
    ) -> DiagnosisAnswer:
        return await self.made.diagnose(options, image, key, request_id, claim, kind)

    async def recommend(
        self,
        request: RecommendRequest,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
        kind: str = "recommend",
    ) -> RecommendationAnswer:
        return await self.made.recommend(request, key, request_id, claim, kind)

    async def analyze(
        self,
        options: AnalyzeOptions,
        image: bytes,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
    ) -> Analysis:
        return await self.made.analyze(options, image, key, request_id, claim)

    async def prediction(self, prediction_id: str) -> PredictionRecord:
        return await self.history.prediction(prediction_id)

    async def predictions(self, limit: int, **filters: Any) -> list[PredictionRecord]:
        return await self.history.predictions(limit, **filters)

    async def image(self, prediction_id: str) -> tuple[bytes, str]:
        return await self.history.image(prediction_id)

    async def feedback(
        self, prediction_id: str, body: FeedbackRequest, key: ApiKey
    ) -> FeedbackResponse:
        return await self.reviews.feedback(prediction_id, body, key)

    async def live_f1(self, since: datetime | None) -> LiveF1Response:
        return await self.reviews.live_f1(since)
