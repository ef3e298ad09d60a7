"""The example store: annotated reconstructions in the project database.

One row per (task, example id): the sample's fields, its labels, the image bytes (for
detection), its split and where it came from (``dataset`` ingest or expert
``feedback``). Selection works on a :class:`Pool` snapshot of one task and split, kept in
memory and refreshed when the table changes (checked at most every ``refresh_s``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, undefer

from ptychobench.data import Sample
from ptychobench.labels import Task
from services.common.database import migrate

SOURCES = ("dataset", "feedback")


class Base(DeclarativeBase):
    pass


class ExampleRow(Base):
    __tablename__ = "retriever_examples"
    __table_args__ = (UniqueConstraint("task", "example_id", name="uq_retriever_task_example"),)

    row_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(20), index=True)
    example_id: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(20), default="train")
    source: Mapped[str] = mapped_column(String(20), default="dataset")
    sample_type: Mapped[str] = mapped_column(String(200), default="unknown")
    instrument: Mapped[str] = mapped_column(String(200), default="")
    beam: Mapped[str] = mapped_column(String(100), default="X-ray")
    package: Mapped[str] = mapped_column(String(100), default="pty-chi")
    artifacts: Mapped[list[str]] = mapped_column(JSON, default=list)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    caption_obj: Mapped[str] = mapped_column(Text, default="")
    caption_param: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    origin: Mapped[str] = mapped_column(String(500), default="")
    """The dataset path or the prediction id the example came from."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class NewExample:
    """An example to store: the sample, its image bytes (detection) and provenance."""

    sample: Sample
    task: Task
    image: bytes | None = None
    source: str = "dataset"
    origin: str = ""


@dataclass(frozen=True)
class StoredExample:
    """An example as selection returns it."""

    sample: Sample
    task: Task
    source: str
    image: bytes | None
    image_sha256: str | None


@dataclass
class Pool:
    """The examples of one task and split, in id order (what selection draws from)."""

    task: Task
    split: str
    stamp: tuple[Any, ...]
    samples: tuple[Sample, ...]
    by_id: dict[str, Sample] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {sample.id: sample for sample in self.samples}

    def __len__(self) -> int:
        return len(self.samples)


def _sample(row: ExampleRow) -> Sample:
    return Sample(
        id=row.example_id,
        sample_type=row.sample_type,
        instrument=row.instrument,
        beam=row.beam,
        package=row.package,
        artifacts=tuple(row.artifacts),
        options=tuple(row.options),
        caption_obj=row.caption_obj,
        caption_param=row.caption_param,
        parameters=row.parameters,
        split=row.split,
    )


class ExampleStore:
    """Reads and writes examples; thread-safe (services call it from worker threads)."""

    def __init__(self, engine: Engine, refresh_s: float = 2.0) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._pools: dict[tuple[Task, str], Pool] = {}
        self._checked: dict[tuple[Task, str], float] = {}
        self._lock = threading.Lock()

    def create_schema(self) -> None:
        """Migrate the project database to the newest schema (Alembic)."""
        migrate(self.engine)

    def upsert(self, examples: Iterable[NewExample]) -> tuple[int, int]:
        """Insert new examples and update known ones (same task and id); returns
        (inserted, updated)."""
        inserted = updated = 0
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            for chunk in _chunks(list(examples), 500):
                keys = {(e.task.value, e.sample.id) for e in chunk}
                existing = {
                    (row.task, row.example_id): row
                    for row in session.scalars(
                        select(ExampleRow).where(
                            ExampleRow.example_id.in_({key[1] for key in keys})
                        )
                    )
                    if (row.task, row.example_id) in keys
                }
                for example in chunk:
                    values = _values(example, now)
                    row = existing.get((example.task.value, example.sample.id))
                    if row is None:
                        row = ExampleRow(**values)
                        session.add(row)
                        existing[(row.task, row.example_id)] = row
                        inserted += 1
                    else:
                        for name, value in values.items():
                            setattr(row, name, value)
                        updated += 1
        with self._lock:
            self._checked.clear()
        return inserted, updated

    def remove_datasets_except(self, keep: Iterable[NewExample]) -> int:
        """Remove the ``dataset`` rows that are not among ``keep`` (same task and id);
        feedback rows stay. Returns how many were removed."""
        kept = {(example.task.value, example.sample.id) for example in keep}
        with Session(self.engine) as session, session.begin():
            rows = session.execute(
                select(ExampleRow.row_id, ExampleRow.task, ExampleRow.example_id).where(
                    ExampleRow.source == "dataset"
                )
            ).all()
            stale = [row_id for row_id, task, example_id in rows if (task, example_id) not in kept]
            for chunk in range(0, len(stale), 500):
                session.execute(
                    delete(ExampleRow).where(ExampleRow.row_id.in_(stale[chunk : chunk + 500]))
                )
        with self._lock:
            self._checked.clear()
        return len(stale)

    def pool(self, task: Task, split: str = "train") -> Pool:
        """The current pool of a task and split (from memory unless the table changed)."""
        key = (task, split)
        with self._lock:
            cached = self._pools.get(key)
            fresh = time.monotonic() - self._checked.get(key, -1e9) < self.refresh_s
            if cached is not None and fresh:
                return cached
        stamp = self._stamp(task, split)
        if cached is not None and cached.stamp == stamp:
            with self._lock:
                self._checked[key] = time.monotonic()
            return cached
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ExampleRow)
                .where(ExampleRow.task == task.value, ExampleRow.split == split)
                .order_by(ExampleRow.example_id)
            ).all()
            pool = Pool(task, split, stamp, tuple(_sample(row) for row in rows))
        with self._lock:
            self._pools[key] = pool
            self._checked[key] = time.monotonic()
        return pool

    def fetch(self, task: Task, ids: Sequence[str], images: bool) -> list[StoredExample]:
        """The examples with these ids, in the order given (unknown ids are skipped)."""
        if not ids:
            return []
        with Session(self.engine) as session:
            query = select(ExampleRow).where(
                ExampleRow.task == task.value, ExampleRow.example_id.in_(list(ids))
            )
            if images:
                query = query.options(undefer(ExampleRow.image))
            rows = {row.example_id: row for row in session.scalars(query)}
            return [
                StoredExample(
                    sample=_sample(rows[i]),
                    task=task,
                    source=rows[i].source,
                    image=rows[i].image if images else None,
                    image_sha256=rows[i].image_sha256,
                )
                for i in ids
                if i in rows
            ]

    def counts(self) -> list[dict[str, Any]]:
        """Examples per task, split and source."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(ExampleRow.task, ExampleRow.split, ExampleRow.source, func.count())
                .group_by(ExampleRow.task, ExampleRow.split, ExampleRow.source)
                .order_by(ExampleRow.task, ExampleRow.split, ExampleRow.source)
            ).all()
        return [
            {"task": task, "split": split, "source": source, "count": count}
            for task, split, source, count in rows
        ]

    def _stamp(self, task: Task, split: str) -> tuple[Any, ...]:
        with Session(self.engine) as session:
            row = session.execute(
                select(
                    func.count(), func.max(ExampleRow.row_id), func.max(ExampleRow.updated_at)
                ).where(ExampleRow.task == task.value, ExampleRow.split == split)
            ).one()
        return tuple(row)


def _values(example: NewExample, now: datetime) -> dict[str, Any]:
    sample = example.sample
    if example.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {example.source!r}")
    return {
        "task": example.task.value,
        "example_id": sample.id,
        "split": sample.split or "train",
        "source": example.source,
        "sample_type": sample.sample_type,
        "instrument": sample.instrument,
        "beam": sample.beam,
        "package": sample.package,
        "artifacts": list(sample.artifacts),
        "options": list(sample.options),
        "caption_obj": sample.caption_obj,
        "caption_param": sample.caption_param,
        "parameters": sample.parameters,
        "image": example.image,
        "image_sha256": hashlib.sha256(example.image).hexdigest() if example.image else None,
        "origin": example.origin,
        "updated_at": now,
    }


def _chunks(items: list[NewExample], size: int) -> Iterable[list[NewExample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
