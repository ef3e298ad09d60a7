"""Benchmark runs in the project database (tables from migrations 0004, 0009 and 0010).

A run is identified by its configuration hash: starting the same configuration again
resumes it. Every answered item is written as soon as it is answered (retried while the
database connection drops), so a killed run loses at most the items in flight, and those
are replayed by the gateway from their Idempotency-Keys, not recomputed.

A run keeps its provenance (:mod:`gateway.bench.provenance`); one whose adapters,
prompts or data set changed since it began is not resumed (:class:`RunChangedError`)
unless a new run is asked for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.bench.config import BenchConfig
from gateway.bench.provenance import changes
from gateway.bench.records import ItemResult
from gateway.tables import Base, Tables
from services.common.database import as_utc, migrate
from services.common.errors import Conflict, NotFound

STATUSES = ("running", "finished", "failed", "interrupted")


class RunChangedError(Conflict):
    """The stored run of this configuration was made with other adapters, prompts or
    data: resuming would mix its answers with the new ones (a 409; the CLI exits 1)."""

    def __init__(self, run_id: str, found: list[str]) -> None:
        super().__init__(
            f"benchmark run {run_id} cannot be resumed: {'; '.join(found)}. Its answers "
            "would be mixed with answers of what changed; start a new run (ptychoagent "
            "bench --restart, or POST /v1/benchmarks?restart=true)",
            run_id=run_id,
            changes=found,
        )
        self.run_id = run_id
        self.changes = found


class RunRow(Base):
    __tablename__ = "bench_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    git_revision: Mapped[str | None] = mapped_column(String(64))
    gateway_url: Mapped[str] = mapped_column(String(500))
    report_dir: Mapped[str | None] = mapped_column(String(1000))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ItemRow(Base):
    __tablename__ = "bench_items"

    run_id: Mapped[str] = mapped_column(ForeignKey("bench_runs.id"), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    task: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    adapter: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(20))
    k: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    sample_id: Mapped[str] = mapped_column(String(200))
    sample_type: Mapped[str] = mapped_column(String(200))
    truth: Mapped[list[str]] = mapped_column(JSON)
    predicted: Mapped[list[str]] = mapped_column(JSON)
    raw_answer: Mapped[str] = mapped_column(Text)
    unmapped: Mapped[list[str]] = mapped_column(JSON)
    prediction_id: Mapped[str | None] = mapped_column(String(32))
    latency_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Closed-loop items only (migration 0009)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    config_hash: str
    config: dict[str, Any]
    status: str
    total: int
    done: int
    failed: int
    message: str
    git_revision: str | None
    gateway_url: str
    report_dir: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    provenance: dict[str, Any] | None = None


def _result(row: ItemRow) -> ItemResult:
    return ItemResult(
        task=row.task,
        model=row.model,
        adapter=row.adapter,
        strategy=row.strategy,
        k=row.k,
        seed=row.seed,
        sample_id=row.sample_id,
        sample_type=row.sample_type,
        truth=tuple(row.truth),
        predicted=tuple(row.predicted),
        raw_answer=row.raw_answer,
        unmapped=tuple(row.unmapped),
        prediction_id=row.prediction_id,
        latency_s=row.latency_s,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        error=row.error,
        outcome=dict(row.outcome) if row.outcome is not None else None,
        prompt_sha256=row.prompt_sha256,
    )


class RunStore(Tables):
    """Reads and writes benchmark runs; synchronous and thread-safe."""

    def create_schema(self) -> None:
        migrate(self.engine)

    def open(
        self,
        config: BenchConfig,
        total: int,
        git_revision: str | None,
        gateway_url: str,
        restart: bool = False,
        provenance: dict[str, Any] | None = None,
    ) -> tuple[RunInfo, set[str]]:
        """The run of this configuration (resumed, or new) and the keys of its items
        that are answered already. ``restart`` forgets a stored run first; without it,
        a stored run whose provenance differs from ``provenance`` in what its answers
        depend on raises :class:`RunChangedError`."""
        digest = config.hash()
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(RunRow).where(RunRow.config_hash == digest)).first()
            if row is not None and restart:
                session.execute(delete(ItemRow).where(ItemRow.run_id == row.id))
                session.delete(row)
                session.flush()
                row = None
            if row is not None and provenance is not None:
                found = changes(row.provenance, provenance)
                if found:
                    raise RunChangedError(row.id, found)
            if row is None:
                row = RunRow(
                    id=uuid.uuid4().hex[:16],
                    config_hash=digest,
                    created_at=now,
                    finished_at=None,
                    report_dir=None,
                )
                session.add(row)
            row.name = config.name
            row.config = config.model_dump(mode="json")
            row.status = "running"
            row.total = total
            row.message = ""
            row.git_revision = git_revision
            row.gateway_url = gateway_url
            if provenance is not None:
                row.provenance = provenance
            row.updated_at = now
            run_id = row.id
            done = set(
                session.scalars(
                    select(ItemRow.item_key).where(
                        ItemRow.run_id == run_id, ItemRow.error.is_(None)
                    )
                )
            )
        return self.get(run_id), done

    def save(self, run_id: str, key: str, result: ItemResult) -> None:
        """Keep one item's result (replacing an earlier failed attempt)."""

        def write() -> None:
            with Session(self.engine) as session, session.begin():
                session.execute(
                    delete(ItemRow).where(ItemRow.run_id == run_id, ItemRow.item_key == key)
                )
                session.add(
                    ItemRow(
                        run_id=run_id,
                        item_key=key,
                        task=result.task,
                        model=result.model,
                        adapter=result.adapter,
                        strategy=result.strategy,
                        k=result.k,
                        seed=result.seed,
                        sample_id=result.sample_id,
                        sample_type=result.sample_type,
                        truth=list(result.truth),
                        predicted=list(result.predicted),
                        raw_answer=result.raw_answer,
                        unmapped=list(result.unmapped),
                        prediction_id=result.prediction_id,
                        latency_s=result.latency_s,
                        prompt_tokens=result.prompt_tokens,
                        completion_tokens=result.completion_tokens,
                        error=result.error,
                        outcome=result.outcome,
                        prompt_sha256=result.prompt_sha256,
                        created_at=datetime.now(UTC),
                    )
                )

        self._retrying(write)

    def finish(
        self, run_id: str, status: str, message: str = "", report_dir: str | None = None
    ) -> RunInfo:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")

        def write() -> None:
            with Session(self.engine) as session, session.begin():
                row = session.get(RunRow, run_id)
                if row is None:
                    raise NotFound(f"no benchmark run {run_id!r}")
                now = datetime.now(UTC)
                row.status, row.message, row.updated_at = status, message, now
                if report_dir is not None:
                    row.report_dir = report_dir
                if status != "running":
                    row.finished_at = now

        self._retrying(write)
        return self.get(run_id)

    def items(self, run_id: str) -> list[ItemResult]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ItemRow).where(ItemRow.run_id == run_id).order_by(ItemRow.item_key)
            )
            return [_result(row) for row in rows]

    def get(self, run_id: str) -> RunInfo:
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no benchmark run {run_id!r}")
            return self._info(session, row)

    def list(self, limit: int = 50) -> list[RunInfo]:
        with Session(self.engine) as session:
            rows = session.scalars(select(RunRow).order_by(RunRow.created_at.desc()).limit(limit))
            return [self._info(session, row) for row in rows]

    @staticmethod
    def _info(session: Session, row: RunRow) -> RunInfo:
        counts = dict(
            session.execute(
                select(ItemRow.error.is_(None), func.count())
                .where(ItemRow.run_id == row.id)
                .group_by(ItemRow.error.is_(None))
            ).all()
        )
        return RunInfo(
            id=row.id,
            name=row.name,
            config_hash=row.config_hash,
            config=dict(row.config),
            status=row.status,
            total=row.total,
            done=int(counts.get(True, 0)),
            failed=int(counts.get(False, 0)),
            message=row.message,
            git_revision=row.git_revision,
            gateway_url=row.gateway_url,
            report_dir=row.report_dir,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
            provenance=dict(row.provenance) if row.provenance is not None else None,
        )
