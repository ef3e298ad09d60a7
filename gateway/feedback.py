"""Expert feedback and live F1: an expert's true labels for a prediction (the latest
review counts), counted into the outcome counters the recording rules turn into live
F1, scored here on request, and optionally added to the retriever's example pool.

Feedback is the one write that must never be lost: :meth:`FeedbackTables.add_feedback`
retries when the database connection drops (a PostgreSQL restart), and writes exactly
once, also when a commit went through but its acknowledgement was lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.keys import ApiKey
from gateway.locks import KeyedLocks
from gateway.metrics import GatewayMetrics, outcomes
from gateway.pool import ExamplePool
from gateway.predictions import Prediction, prediction_of
from gateway.tables import FeedbackRow, PredictionRow, Tables
from ptychobench.labels import Task, canonical_order, null_label, vocabulary
from ptychobench.metrics import score
from ptychobench.report.stats import class_scores
from ptychowire.gateway import (
    ClassScore,
    FeedbackRequest,
    FeedbackResponse,
    LiveF1Response,
    LiveScore,
    Outcomes,
)
from services.common.database import as_utc, retrying
from services.common.errors import InvalidInput, NotFound, ServiceError

if TYPE_CHECKING:
    from gateway.store import PredictionStore


@dataclass(frozen=True)
class Feedback:
    id: int
    prediction_id: str
    labels: list[str]
    expert: str
    comment: str
    added_to_pool: bool
    created_at: datetime


def feedback_of(row: FeedbackRow) -> Feedback:
    return Feedback(
        row.id,
        row.prediction_id,
        list(row.labels),
        row.expert,
        row.comment,
        row.added_to_pool,
        as_utc(row.created_at),
    )


class FeedbackTables(Tables):
    """The store functions of expert feedback."""

    def feedback_for(self, prediction_ids: Iterable[str]) -> dict[str, list[Feedback]]:
        """The feedback of several predictions, oldest first for each."""
        ids = list(prediction_ids)
        out: dict[str, list[Feedback]] = {i: [] for i in ids}
        if not ids:
            return out
        with Session(self.engine) as session:
            rows = session.scalars(
                select(FeedbackRow)
                .where(FeedbackRow.prediction_id.in_(ids))
                .order_by(FeedbackRow.id)
            )
            for row in rows:
                out[row.prediction_id].append(feedback_of(row))
        return out

    def add_feedback(
        self,
        prediction_id: str,
        labels: list[str],
        expert: str,
        comment: str = "",
        added_to_pool: bool = False,
    ) -> Feedback:
        """Record an expert's true labels (retried while the database is unreachable;
        exactly once, also when a commit went through but its acknowledgement was lost)."""
        token = uuid.uuid4().hex

        def write() -> Feedback:
            with Session(self.engine) as session, session.begin():
                written = session.scalar(
                    select(FeedbackRow).where(FeedbackRow.write_token == token)
                )
                if written is not None:  # an earlier attempt committed
                    return feedback_of(written)
                if session.get(PredictionRow, prediction_id) is None:
                    raise NotFound(f"no prediction {prediction_id!r}")
                row = FeedbackRow(
                    write_token=token,
                    prediction_id=prediction_id,
                    labels=labels,
                    expert=expert,
                    comment=comment,
                    added_to_pool=added_to_pool,
                    created_at=datetime.now(UTC),
                )
                session.add(row)
                session.flush()
                return feedback_of(row)

        return self._retrying(write)

    def feedback(self, prediction_id: str) -> list[Feedback]:
        """Every feedback of a prediction, oldest first (the latest one counts)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(FeedbackRow)
                .where(FeedbackRow.prediction_id == prediction_id)
                .order_by(FeedbackRow.id)
            )
            return [feedback_of(row) for row in rows]

    def set_added_to_pool(self, feedback_id: int) -> None:
        """Mark a feedback's sample as added to the retriever's pool."""
        with Session(self.engine) as session, session.begin():
            row = session.get(FeedbackRow, feedback_id)
            if row is None:
                raise NotFound(f"no feedback {feedback_id}")
            row.added_to_pool = True

    def reviewed(
        self, since: datetime | None = None, task: str | None = None
    ) -> list[tuple[Prediction, Feedback]]:
        """Each reviewed prediction with its latest feedback (given at or after
        ``since``), oldest prediction first."""
        latest = (
            select(FeedbackRow.prediction_id, func.max(FeedbackRow.id).label("id"))
            .group_by(FeedbackRow.prediction_id)
            .subquery()
        )
        query = (
            select(PredictionRow, FeedbackRow)
            .join(latest, latest.c.prediction_id == PredictionRow.id)
            .join(FeedbackRow, FeedbackRow.id == latest.c.id)
            .order_by(PredictionRow.created_at, PredictionRow.id)
        )
        if since is not None:
            query = query.where(FeedbackRow.created_at >= since)
        if task is not None:
            query = query.where(PredictionRow.task == task)
        with Session(self.engine) as session:
            return [(prediction_of(p), feedback_of(f)) for p, f in session.execute(query)]


class Reviews:
    """Takes experts' reviews into live F1 (and, on request, into the example pool)."""

    def __init__(
        self, store: PredictionStore, metrics: GatewayMetrics, pool: ExamplePool | None
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.pool = pool
        self._review_locks = KeyedLocks()

    async def feedback(
        self, prediction_id: str, body: FeedbackRequest, key: ApiKey
    ) -> FeedbackResponse:
        """Record an expert's true labels; the latest review of a prediction counts."""
        if body.add_to_pool and self.pool is None:
            raise InvalidInput(
                "add_to_pool needs the retriever, and this gateway has none configured "
                "(GATEWAY_RETRIEVER__BASE_URL)"
            )
        async with self._review_locks.hold(prediction_id):
            prediction, earlier = await asyncio.to_thread(
                retrying,
                lambda: self._prediction_and_reviews(prediction_id),
                self.store.retries,
                self.store.sleep,
            )
            labels = check_labels(body.labels, prediction.task)
            expert = body.expert or key.name
            saved = await asyncio.to_thread(
                self.store.add_feedback, prediction_id, labels, expert, body.comment
            )
            previous = earlier[-1] if earlier else None
            if previous is not None:
                self._count(prediction, previous.labels, retract=True)
            found = self._count(prediction, labels)
            self.metrics.feedback.labels(
                task=prediction.task, replaced=str(previous is not None).lower()
            ).inc()
        added, pool_error = False, None
        if body.add_to_pool and self.pool is not None:  # checked above
            try:
                await self.pool.add(prediction, labels)
                await asyncio.to_thread(self.store.set_added_to_pool, saved.id)
                added = True
            except ServiceError as error:
                pool_error = error.detail
        return FeedbackResponse(
            feedback_id=saved.id,
            prediction_id=prediction_id,
            task=prediction.task,
            labels=labels,
            expert=expert,
            outcomes=Outcomes(**found),
            replaces=previous.id if previous is not None else None,
            added_to_pool=added,
            pool_error=pool_error,
            created_at=saved.created_at,
        )

    def _count(
        self, prediction: Prediction, truth: list[str], retract: bool = False
    ) -> dict[str, list[str]]:
        found = outcomes(prediction.labels, truth, prediction.task)
        self.metrics.count_outcomes(
            found,
            task=prediction.task,
            adapter=prediction.adapter,
            strategy=prediction.strategy,
            k=prediction.k,
            retract=retract,
        )
        return found

    def _prediction_and_reviews(self, prediction_id: str) -> tuple[Prediction, list[Feedback]]:
        return self.store.get(prediction_id), self.store.feedback(prediction_id)

    async def live_f1(self, since: datetime | None) -> LiveF1Response:
        """Micro-F1 per task and adapter over the reviewed predictions, each at its
        latest review: the figure the recording rules give from the counters."""
        reviewed = await asyncio.to_thread(self.store.reviewed, since)
        groups: defaultdict[tuple[str, str], list[tuple[Prediction, Feedback]]]
        groups = defaultdict(list)
        for prediction, feedback in reviewed:
            groups[(prediction.task, prediction.adapter)].append((prediction, feedback))
        scores = []
        for (task, adapter), items in sorted(groups.items()):
            vocab = vocabulary(task)
            result = score([f.labels for _, f in items], [p.labels for p, _ in items], vocab)
            predicted = {label for p, _ in items for label in p.labels}
            scores.append(
                LiveScore(
                    task=task,
                    adapter=adapter,
                    reviewed=len(items),
                    micro_f1=result.micro.f1,
                    micro_precision=result.micro.precision,
                    micro_recall=result.micro.recall,
                    per_class=[
                        ClassScore.model_validate(row)
                        for row in class_scores(result.per_class)
                        if row["support"] or row["label"] in predicted
                    ],
                )
            )
        return LiveF1Response(since=since, scores=scores)


def check_labels(labels: list[str], task: str) -> list[str]:
    vocab = vocabulary(task)
    unknown = [label for label in labels if label not in vocab]
    if unknown:
        allowed = "A–X" if task == Task.RECOMMENDATION.value else str(list(vocab))
        raise InvalidInput(f"unknown label(s) {unknown} for a {task} prediction; use {allowed}")
    if not labels:
        raise InvalidInput(
            f"labels is empty; when there is nothing to report, send [{null_label(task)!r}]"
        )
    return canonical_order(labels, task)
