"""Reading refinement jobs back, with their rounds and the experts' reviews of rounds."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gateway.keys import ApiKey
from gateway.metrics import GatewayMetrics
from gateway.refine.store import RefineJob, RefineStore, Round
from ptychowire.refine import (
    RefineJobResponse,
    RefineRound,
    RoundReviewEntry,
    RoundReviewRequest,
    RoundReviewResponse,
)
from services.common.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from gateway.service import GatewayService


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/refine/{job_id}"
    return {"self": base, "rounds": f"{base}/rounds", "review_page": f"/ui/refine/{job_id}"}


class RefineReading:
    """The read side of :class:`gateway.refine.service.RefineService`: jobs, rounds,
    their images, and experts' verdicts on rounds."""

    store: RefineStore
    gateway: GatewayService
    metrics: GatewayMetrics

    def response(
        self, job: RefineJob, rounds: list[Round], reviews: dict[str, list[Any]]
    ) -> RefineJobResponse:
        return RefineJobResponse(
            id=job.id,
            state=job.state,  # type: ignore[arg-type]
            outcome=job.outcome,
            sample_type=job.sample_type,
            instrument=job.instrument,
            max_rounds=job.max_rounds,
            rounds_done=job.rounds_done,
            attempts=job.attempts,
            cancel_requested=job.cancel_requested,
            error=job.error,
            progress=job.progress,
            experiment_sha256=job.experiment_sha256,
            request=job.request,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            rounds=[self.round_record(r, reviews.get(r.id, [])) for r in rounds],
            links=links(job.id),
        )

    @staticmethod
    def round_record(item: Round, reviews: list[Any]) -> RefineRound:
        fields = {
            name: getattr(item, name) for name in RefineRound.model_fields if name != "reviews"
        }
        return RefineRound(
            **fields,
            reviews=[RoundReviewEntry.model_validate(r, from_attributes=True) for r in reviews],
        )

    async def job(self, job_id: str) -> RefineJobResponse:
        def read() -> RefineJobResponse:
            job = self.store.get(job_id)
            rounds = self.store.rounds(job_id)
            return self.response(job, rounds, self.store.reviews(r.id for r in rounds))

        return await asyncio.to_thread(read)

    async def jobs(self, limit: int) -> list[RefineJobResponse]:
        found = await asyncio.to_thread(self.store.recent, limit)
        return [self.response(job, [], {}) for job in found]

    async def rounds(self, job_id: str) -> list[RefineRound]:
        return (await self.job(job_id)).rounds

    async def review(
        self, job_id: str, number: int, body: RoundReviewRequest, key: ApiKey
    ) -> RoundReviewResponse:
        """An expert's verdict on a round: stored and counted (the latest one counts)."""
        item = await asyncio.to_thread(self.store.round, job_id, number)
        if item.outcome == "unchanged":
            raise InvalidInput(f"round {number} changed nothing; there is nothing to review")
        expert = body.expert or key.name
        saved = await asyncio.to_thread(
            self.store.add_review, item.id, body.verdict, expert, body.comment
        )
        self.metrics.prepare_refine(item.adapter)
        self.metrics.refine_reviews.labels(
            adapter=item.adapter, outcome=item.outcome, verdict=body.verdict
        ).inc()
        agrees = (body.verdict == "confirm") == (item.outcome == "accepted")
        return RoundReviewResponse(
            id=saved.id,
            round_id=item.id,
            verdict=saved.verdict,
            expert=saved.expert,
            comment=saved.comment,
            created_at=saved.created_at,
            agrees=agrees,
        )

    async def image(self, job_id: str, number: int, which: str) -> bytes:
        item = await asyncio.to_thread(self.store.round, job_id, number)
        sha = item.image_before_sha256 if which == "before" else item.image_after_sha256
        if sha is None:
            raise NotFound(f"round {number} has no {which} image")
        return await asyncio.to_thread(self.gateway.store.image, sha)
