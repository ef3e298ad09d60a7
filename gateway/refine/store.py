"""Refinement jobs, their rounds and experts' reviews of rounds in the project database
(tables ``gateway_refine_jobs``, ``gateway_refine_rounds``, ``gateway_refine_reviews``;
migration 0008). Images are the gateway's (``gateway_images``, once per SHA-256).

A job's row is the truth about it. State changes are conditional updates, so a job
cancelled meanwhile is never finished as done; a job found ``running`` at start-up (the
gateway died under it) is resumed from its last stored state, or marked ``interrupted``
once it has been started ``max_attempts`` times.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.tables import Base
from services.common.database import as_utc
from services.common.errors import NotFound

ACTIVE = ("queued", "running")


class RefineJobRow(Base):
    __tablename__ = "gateway_refine_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    sample_type: Mapped[str] = mapped_column(String(200))
    instrument: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    experiment_path: Mapped[str] = mapped_column(Text)
    experiment_sha256: Mapped[str] = mapped_column(String(64))
    max_rounds: Mapped[int] = mapped_column(Integer)
    rounds_done: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    current: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The loop's state at the start of the next round (None: not reconstructed yet)."""
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefineRoundRow(Base):
    __tablename__ = "gateway_refine_rounds"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_gateway_refine_rounds_job_number"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("gateway_refine_jobs.id"))
    number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    adapter: Mapped[str] = mapped_column(String(200))
    letters: Mapped[list[str]] = mapped_column(JSON)
    applied: Mapped[list[str]] = mapped_column(JSON)
    skipped: Mapped[dict[str, str]] = mapped_column(JSON)
    options_before: Mapped[dict[str, Any]] = mapped_column(JSON)
    options_after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    options_diff: Mapped[dict[str, Any]] = mapped_column(JSON)
    preprocess_before: Mapped[list[str]] = mapped_column(JSON)
    preprocess_after: Mapped[list[str] | None] = mapped_column(JSON)
    artifacts_before: Mapped[list[str]] = mapped_column(JSON)
    artifacts_after: Mapped[list[str] | None] = mapped_column(JSON)
    metrics_before: Mapped[dict[str, float]] = mapped_column(JSON)
    metrics_after: Mapped[dict[str, float] | None] = mapped_column(JSON)
    loss_before: Mapped[float | None] = mapped_column(Float)
    loss_after: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    image_before_sha256: Mapped[str | None] = mapped_column(ForeignKey("gateway_images.sha256"))
    image_after_sha256: Mapped[str | None] = mapped_column(ForeignKey("gateway_images.sha256"))
    diagnose_before_id: Mapped[str | None] = mapped_column(String(32))
    recommend_id: Mapped[str | None] = mapped_column(String(32))
    diagnose_after_id: Mapped[str | None] = mapped_column(String(32))
    recon_before_job: Mapped[str | None] = mapped_column(String(32))
    recon_after_job: Mapped[str | None] = mapped_column(String(32))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RoundReviewRow(Base):
    __tablename__ = "gateway_refine_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("gateway_refine_rounds.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    expert: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class RefineJob:
    id: str
    state: str
    api_key_id: str | None
    sample_type: str
    instrument: str
    request: dict[str, Any]
    experiment_path: str
    experiment_sha256: str
    max_rounds: int
    rounds_done: int
    attempts: int
    cancel_requested: bool
    outcome: str | None
    error: str | None
    current: dict[str, Any] | None
    progress: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass
class Round:
    """One round of a job: the change proposed, applied, reconstructed and judged."""

    job_id: str
    number: int
    outcome: str
    """accepted, rejected, or unchanged (no letter could be applied)."""
    adapter: str
    letters: list[str]
    applied: list[str]
    skipped: dict[str, str]
    options_before: dict[str, Any]
    options_diff: dict[str, Any]
    preprocess_before: list[str]
    artifacts_before: list[str]
    metrics_before: dict[str, float]
    loss_before: float | None
    provenance: dict[str, Any]
    seconds: float
    options_after: dict[str, Any] | None = None
    preprocess_after: list[str] | None = None
    artifacts_after: list[str] | None = None
    metrics_after: dict[str, float] | None = None
    loss_after: float | None = None
    verdict: dict[str, Any] | None = None
    image_before_sha256: str | None = None
    image_after_sha256: str | None = None
    diagnose_before_id: str | None = None
    recommend_id: str | None = None
    diagnose_after_id: str | None = None
    recon_before_job: str | None = None
    recon_after_job: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class RoundReview:
    id: int
    round_id: str
    verdict: str
    expert: str
    comment: str
    created_at: datetime


def _job(row: RefineJobRow) -> RefineJob:
    values = {name: getattr(row, name) for name in RefineJob.__dataclass_fields__}
    for name in ("created_at", "updated_at", "finished_at"):
        if values[name] is not None:
            values[name] = as_utc(values[name])
    return RefineJob(**values)


def _round(row: RefineRoundRow) -> Round:
    values = {name: getattr(row, name) for name in Round.__dataclass_fields__}
    values["created_at"] = as_utc(values["created_at"])
    return Round(**values)


def _review(row: RoundReviewRow) -> RoundReview:
    return RoundReview(
        row.id, row.round_id, row.verdict, row.expert, row.comment, as_utc(row.created_at)
    )


def now() -> datetime:
    return datetime.now(UTC)


class RefineStore:
    """Reads and writes refinement jobs; synchronous and thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        job_id: str,
        *,
        api_key_id: str | None,
        sample_type: str,
        instrument: str,
        request: dict[str, Any],
        experiment_path: str,
        experiment_sha256: str,
        max_rounds: int,
    ) -> RefineJob:
        moment = now()
        row = RefineJobRow(
            id=job_id,
            state="queued",
            api_key_id=api_key_id,
            sample_type=sample_type,
            instrument=instrument,
            request=request,
            experiment_path=experiment_path,
            experiment_sha256=experiment_sha256,
            max_rounds=max_rounds,
            rounds_done=0,
            attempts=0,
            cancel_requested=False,
            outcome=None,
            error=None,
            current=None,
            progress={"stage": "queued", "round": 0},
            created_at=moment,
            updated_at=moment,
            finished_at=None,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            return _job(row)

    def get(self, job_id: str) -> RefineJob:
        with Session(self.engine) as session:
            row = session.get(RefineJobRow, job_id)
            if row is None:
                raise NotFound(f"no refinement job {job_id!r}")
            return _job(row)

    def recent(self, limit: int = 50) -> list[RefineJob]:
        query = select(RefineJobRow).order_by(RefineJobRow.created_at.desc()).limit(limit)
        with Session(self.engine) as session:
            return [_job(row) for row in session.scalars(query)]

    def _update(self, job_id: str, states: Iterable[str] | None, **values: Any) -> bool:
        query = update(RefineJobRow).where(RefineJobRow.id == job_id)
        if states is not None:
            query = query.where(RefineJobRow.state.in_(list(states)))
        with Session(self.engine) as session, session.begin():
            return bool(session.execute(query.values(updated_at=now(), **values)).rowcount)  # type: ignore[attr-defined]

    def start(self, job_id: str) -> bool:
        """queued → running, counting the attempt."""
        return self._update(
            job_id, ("queued",), state="running", attempts=RefineJobRow.attempts + 1
        )

    def progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self._update(job_id, ("running",), progress=progress)

    def save_state(self, job_id: str, current: dict[str, Any]) -> None:
        self._update(job_id, ACTIVE, current=current)

    def finish(
        self, job_id: str, state: str, outcome: str | None = None, error: str | None = None
    ) -> bool:
        """Running (or queued) → a final state; False when it was not active any more."""
        return self._update(
            job_id,
            ACTIVE,
            state=state,
            outcome=outcome,
            error=error,
            finished_at=now(),
            progress={"stage": state},
        )

    def cancel(self, job_id: str) -> str:
        """Ask a job to stop; its state before (a finished one is left alone)."""
        job = self.get(job_id)
        if job.state in ACTIVE:
            self._update(job_id, ACTIVE, cancel_requested=True)
        return job.state

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """Jobs left queued or running by a gateway that stopped: those with attempts
        left are queued again (to resume), the others marked interrupted."""
        resumed, interrupted = [], []
        with Session(self.engine) as session:
            rows = list(session.scalars(select(RefineJobRow).where(RefineJobRow.state.in_(ACTIVE))))
        for row in rows:
            if row.cancel_requested:
                self.finish(row.id, "cancelled", error="cancelled while the gateway was down")
            elif row.attempts >= max_attempts:
                self.finish(
                    row.id,
                    "interrupted",
                    error=f"the gateway stopped under it {row.attempts} time(s); not resumed",
                )
                interrupted.append(row.id)
            else:
                self._update(row.id, ACTIVE, state="queued")
                resumed.append(row.id)
        return resumed, interrupted

    def requeue(self, job_id: str) -> None:
        """A running job the gateway stops gracefully: queued again, its attempt not
        counted."""
        self._update(job_id, ("running",), state="queued", attempts=RefineJobRow.attempts - 1)

    def add_round(self, item: Round, current: dict[str, Any]) -> None:
        """Store a round, count it on its job and keep the loop's state after it (one
        transaction: a resumed job goes on from the round after)."""
        values = {name: getattr(item, name) for name in Round.__dataclass_fields__}
        with Session(self.engine) as session, session.begin():
            session.add(RefineRoundRow(**values))
            session.execute(
                update(RefineJobRow)
                .where(RefineJobRow.id == item.job_id)
                .values(rounds_done=item.number, current=current, updated_at=now())
            )

    def rounds(self, job_id: str) -> list[Round]:
        query = (
            select(RefineRoundRow)
            .where(RefineRoundRow.job_id == job_id)
            .order_by(RefineRoundRow.number)
        )
        with Session(self.engine) as session:
            return [_round(row) for row in session.scalars(query)]

    def round(self, job_id: str, number: int) -> Round:
        with Session(self.engine) as session:
            row = session.scalar(
                select(RefineRoundRow).where(
                    RefineRoundRow.job_id == job_id, RefineRoundRow.number == number
                )
            )
            if row is None:
                raise NotFound(f"refinement job {job_id!r} has no round {number}")
            return _round(row)

    def add_review(self, round_id: str, verdict: str, expert: str, comment: str) -> RoundReview:
        with Session(self.engine) as session, session.begin():
            row = RoundReviewRow(
                round_id=round_id, verdict=verdict, expert=expert, comment=comment, created_at=now()
            )
            session.add(row)
            session.flush()
            return _review(row)

    def reviews(self, round_ids: Iterable[str]) -> dict[str, list[RoundReview]]:
        ids = list(round_ids)
        out: dict[str, list[RoundReview]] = {i: [] for i in ids}
        if not ids:
            return out
        with Session(self.engine) as session:
            for row in session.scalars(
                select(RoundReviewRow)
                .where(RoundReviewRow.round_id.in_(ids))
                .order_by(RoundReviewRow.id)
            ):
                out[row.round_id].append(_review(row))
        return out

    def accepted(self, job_ids: Iterable[str]) -> dict[str, int]:
        """How many accepted rounds each job has (0 for none), in one query."""
        ids = list(job_ids)
        out = dict.fromkeys(ids, 0)
        if not ids:
            return out
        with Session(self.engine) as session:
            rows = session.execute(
                select(RefineRoundRow.job_id, func.count())
                .where(RefineRoundRow.job_id.in_(ids), RefineRoundRow.outcome == "accepted")
                .group_by(RefineRoundRow.job_id)
            )
            out.update({job_id: int(n) for job_id, n in rows})
        return out

    def counts(self) -> dict[str, int]:
        """Jobs by state."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(RefineJobRow.state, func.count()).group_by(RefineJobRow.state)
            )
            return {state: int(n) for state, n in rows}
