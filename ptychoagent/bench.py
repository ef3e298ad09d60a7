"""The benchmark runner's items over HTTP: :class:`HttpPredictor` sends each through
the gateway's typed client (its retries and Idempotency-Keys). It lives with the client,
on the caller's side: the server side (``gateway.bench``) never imports this package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gateway.bench.runner import ItemFailedError, refused
from ptychoagent.client import AsyncClient, GatewayError
from ptychowire.agent import RecommendRequest
from ptychowire.diagnosis import DiagnoseOptions
from ptychowire.gateway import DiagnosisAnswer, RecommendationAnswer


class HttpPredictor:
    """Items over HTTP, with the gateway's client (its retries and Idempotency-Keys)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def diagnose(
        self, options: DiagnoseOptions, image: bytes, idempotency_key: str
    ) -> DiagnosisAnswer:
        with _failures():
            return await self.client.diagnose(
                image,
                sample_type=options.sample.sample_type,
                instrument=options.sample.instrument,
                sample_id=options.sample.id,
                k=options.k,
                strategy=options.strategy,
                backend=options.backend,
                adapter=options.adapter,
                seed=options.seed,
                idempotency_key=idempotency_key,
            )

    async def recommend(
        self, request: RecommendRequest, idempotency_key: str
    ) -> RecommendationAnswer:
        with _failures():
            return await self.client.recommend(
                request.sample.model_dump(mode="json"),
                k=request.k,
                strategy=request.strategy,
                adapter=request.adapter,
                seed=request.seed,
                sample_id=request.sample_id,
                idempotency_key=idempotency_key,
            )

    async def feedback(self, prediction_id: str, labels: list[str]) -> None:
        with _failures():
            await self.client.feedback(prediction_id, labels, expert="benchmark")


@contextmanager
def _failures() -> Iterator[None]:
    """A gateway error as an item failure: fatal for what the gateway refuses (4xx but
    timeouts and rate limits), which every other item would repeat."""
    try:
        yield
    except GatewayError as error:
        raise ItemFailedError(str(error), fatal=refused(error.status)) from error
