"""Reconstruction jobs in the project database (table ``reconstructor_jobs``).

A job's row is the truth about it: its state, progress, attempts and, when done, a
summary of its result (the arrays are files in the job's folder). State changes are
conditional updates (``… WHERE state = 'queued'``), so a job cancelled while it waited
is never started, and a worker never finishes a job that was cancelled under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.database import as_utc, migrate


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "reconstructor_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Option overrides and preprocessing, as submitted."""
    experiment_path: Mapped[str] = mapped_column(Text)
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    """The experiment file is the job's own copy (not a server-side file)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    epochs_total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Job:
    """A snapshot of a job's row."""

    id: str
    state: str
    name: str
    request: dict[str, Any]
    experiment_path: str
    uploaded: bool
    attempts: int
    cancel_requested: bool
    epochs_done: int
    epochs_total: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        state=row.state,
        name=row.name,
        request=dict(row.request or {}),
        experiment_path=row.experiment_path,
        uploaded=row.uploaded,
        attempts=row.attempts,
        cancel_requested=row.cancel_requested,
        epochs_done=row.epochs_done,
        epochs_total=row.epochs_total,
        error=row.error,
        result=row.result,
        created_at=as_utc(row.created_at),
        started_at=as_utc(row.started_at) if row.started_at else None,
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
    )


def now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Reads and writes jobs; synchronous (the service calls it from threads)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Migrate the project database to the newest schema (Alembic)."""
        migrate(self.engine)

    def add(
        self,
        job_id: str,
        name: str,
        request: dict[str, Any],
        experiment_path: str,
        uploaded: bool,
        epochs_total: int,
    ) -> Job:
        with Session(self.engine) as session, session.begin():
            row = JobRow(
                id=job_id,
                state="queued",
                name=name,
                request=request,
                experiment_path=experiment_path,
                uploaded=uploaded,
                attempts=0,
                cancel_requested=False,
                epochs_done=0,
                epochs_total=epochs_total,
                created_at=now(),
            )
            session.add(row)
            session.flush()
            return _job(row)

    def get(self, job_id: str) -> Job | None:
        with Session(self.engine) as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row is not None else None

    def count(self, state: str) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).where(JobRow.state == state)) or 0)

    def ids(self, state: str) -> list[str]:
        """Jobs in ``state``, oldest first."""
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(JobRow.id).where(JobRow.state == state).order_by(JobRow.created_at)
                )
            )

    def _move(self, job_id: str, from_states: Sequence[str], **values: Any) -> bool:
        with Session(self.engine) as session, session.begin():
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_(list(from_states)))
                .values(**values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def claim(self, job_id: str) -> Job | None:
        """queued → running (one more attempt); None if it was not queued."""
        with Session(self.engine) as session, session.begin():
            row = session.get(JobRow, job_id, with_for_update=True)
            if row is None or row.state != "queued":
                return None
            row.state = "running"
            row.attempts += 1
            row.started_at = now()
            row.epochs_done = 0
            row.error = None
            session.flush()
            return _job(row)

    def progress(self, job_id: str, epochs_done: int) -> None:
        self._move(job_id, ("running",), epochs_done=epochs_done)

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        epochs_done: int | None = None,
    ) -> bool:
        """running → a final state."""
        values: dict[str, Any] = {"state": state, "error": error, "finished_at": now()}
        if result is not None:
            values["result"] = result
        if epochs_done is not None:
            values["epochs_done"] = epochs_done
        return self._move(job_id, ("running",), **values)

    def requeue(self, job_id: str, count_attempt: bool) -> bool:
        """running → queued (the service stopped under it)."""
        values: dict[str, Any] = {"state": "queued", "started_at": None, "epochs_done": 0}
        if not count_attempt:
            values["attempts"] = JobRow.attempts - 1
        return self._move(job_id, ("running",), **values)

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued job at once, or ask a running one to stop; returns the state
        it was in (None: no such job)."""
        with Session(self.engine) as session, session.begin():
            row = session.get(JobRow, job_id, with_for_update=True)
            if row is None:
                return None
            before = row.state
            if row.state == "queued":
                row.state = "cancelled"
                row.finished_at = now()
                row.cancel_requested = True
            elif row.state == "running":
                row.cancel_requested = True
            return before

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """At start-up: jobs left running by a service that died are queued again, or
        marked interrupted once they have been started ``max_attempts`` times. Returns
        (re-queued ids, interrupted ids)."""
        requeued: list[str] = []
        interrupted: list[str] = []
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(select(JobRow).where(JobRow.state == "running")):
                if row.cancel_requested:
                    row.state = "cancelled"
                    row.finished_at = now()
                    interrupted.append(row.id)
                elif row.attempts < max_attempts:
                    row.state = "queued"
                    row.started_at = None
                    row.epochs_done = 0
                    requeued.append(row.id)
                else:
                    row.state = "interrupted"
                    row.finished_at = now()
                    row.error = (
                        f"the service stopped while this job ran, {row.attempts} time(s); "
                        "it is not started again (resubmit it)"
                    )
                    interrupted.append(row.id)
        return requeued, interrupted
