"""What the gateway does, room by room: forward to the diagnosis and agent services and
keep every answer with its provenance (:mod:`gateway.predictions`), read them back
(:mod:`gateway.history`), replay Idempotency-Keys (:mod:`gateway.idempotency`), take
expert feedback into live F1 (:mod:`gateway.feedback`) and, on request, into the
retriever's example pool (:mod:`gateway.pool`).

:class:`GatewayService` is the house: one object of every room."""

from __future__ import annotations

from gateway.feedback import Reviews
from gateway.history import History
from gateway.idempotency import Idempotency
from gateway.metrics import GatewayMetrics
from gateway.pool import ExamplePool
from gateway.predictions import Predictions
from gateway.settings import GatewaySettings
from gateway.store import PredictionStore
from services.common.upstream import Upstream


class GatewayService(Predictions, History, Reviews, Idempotency):
    """The gateway's rooms in one object for the routes, the benchmark runner and the
    closed loop; each method is its room's."""

    def __init__(
        self,
        settings: GatewaySettings,
        store: PredictionStore,
        metrics: GatewayMetrics,
        diagnosis: Upstream,
        agent: Upstream,
        retriever: Upstream | None = None,
    ) -> None:
        Predictions.__init__(self, settings, store, metrics, diagnosis, agent)
        History.__init__(self, store)
        pool = None if retriever is None else ExamplePool(store, retriever)
        Reviews.__init__(self, store, metrics, pool)
        Idempotency.__init__(self, settings, store)
        self.retriever = retriever
