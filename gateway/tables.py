"""The gateway's tables, one ``DeclarativeBase`` for the gateway's database: the
predictions with their provenance, the uploaded images (once per SHA-256), expert
feedback and the answers kept for ``Idempotency-Key`` replays. The API keys, benchmark
runs and refinement jobs join the same :class:`Base` from their own modules.

The tables come from the project's migrations (``services.common.database.migrate``),
never from ``create_all``. :class:`Tables` is what each room's store functions share:
the engine and the retry policy for writes that must not be lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.database import retrying

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    __tablename__ = "gateway_images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    format: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PredictionRow(Base):
    __tablename__ = "gateway_predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(20))
    analysis_id: Mapped[str | None] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    sample_type: Mapped[str] = mapped_column(String(200))
    instrument: Mapped[str] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(JSON)
    raw_answer: Mapped[str] = mapped_column(Text)
    unmapped: Mapped[list[str]] = mapped_column(JSON)
    scores: Mapped[dict[str, float] | None] = mapped_column(JSON)
    backend: Mapped[str] = mapped_column(String(20))
    adapter: Mapped[str] = mapped_column(String(200))
    service_url: Mapped[str] = mapped_column(String(500))
    prompt_version: Mapped[str | None] = mapped_column(String(50))
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    example_ids: Mapped[list[str]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(20))
    latency_s: Mapped[float] = mapped_column(Float)
    backend_latency_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_sha256: Mapped[str | None] = mapped_column(ForeignKey("gateway_images.sha256"))


class FeedbackRow(Base):
    __tablename__ = "gateway_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("gateway_predictions.id"))
    labels: Mapped[list[str]] = mapped_column(JSON)
    expert: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    added_to_pool: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    write_token: Mapped[str | None] = mapped_column(String(32), unique=True)
    """Chosen before the first attempt to write the row: a retry after a commit whose
    acknowledgement was lost finds the row instead of adding a second one."""


class IdempotencyRow(Base):
    __tablename__ = "gateway_idempotency"

    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(50))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """None while the claim's holder is still asking the model."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the key was claimed (the lease runs from here)."""
    claim: Mapped[str] = mapped_column(String(32))
    """The holder's token: only it may answer or release the key."""
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Tables:
    """The engine and the write retries that every room's store functions share;
    synchronous and thread-safe (callers use ``asyncio.to_thread``)."""

    def __init__(
        self, engine: Engine, retries: int = 5, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.engine = engine
        self.retries = retries
        self.sleep = sleep

    def _retrying(self, write: Callable[[], T]) -> T:
        return retrying(write, self.retries, self.sleep)
