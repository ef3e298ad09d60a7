"""The gateway's record in the project database: every prediction with its provenance,
the uploaded images (stored once per SHA-256), expert feedback, and the answers kept for
``Idempotency-Key`` replays.

An Idempotency-Key is claimed in the database before the model is called
(:meth:`PredictionStore.claim`: a row under the key's primary key, so of concurrent
requests in any process on any host exactly one gets it) and answered in the
transaction that stores the prediction (:meth:`PredictionStore.add`), so an answer is
never stored twice nor without its key. A claim whose process died is taken over after
its lease; a failed call gives the key back (:meth:`PredictionStore.release`).

Feedback is the one write that must never be lost: :meth:`PredictionStore.add_feedback`
retries when the database connection drops (a PostgreSQL restart), and is idempotent on
its caller's side through the prediction id. The tables come from the project's
migrations (revision 0003), never from ``create_all``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
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
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.database import migrate
from services.common.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)
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


@dataclass
class Prediction:
    """One model answer and what produced it."""

    kind: str
    task: str
    sample_type: str
    instrument: str
    labels: list[str]
    raw_answer: str
    backend: str
    adapter: str
    service_url: str
    seed: int
    k: int
    strategy: str
    latency_s: float
    backend_latency_s: float
    request: dict[str, Any]
    unmapped: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None
    prompt_version: str | None = None
    prompt_hash: str | None = None
    example_ids: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_sha256: str | None = None
    analysis_id: str | None = None
    api_key_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Feedback:
    id: int
    prediction_id: str
    labels: list[str]
    expert: str
    comment: str
    added_to_pool: bool
    created_at: datetime


@dataclass(frozen=True)
class Replay:
    """What an ``Idempotency-Key`` was first used for, and the answer given then (None:
    another request holds the key and is still asking the model)."""

    endpoint: str
    request_hash: str
    response: dict[str, Any] | None


@dataclass
class Claim:
    """This request holds an Idempotency-Key: it asks the model, and its answer is
    stored with the prediction (``answered`` then)."""

    api_key_id: str
    key: str
    token: str
    answered: bool = False


def _prediction(row: PredictionRow) -> Prediction:
    values = {name: getattr(row, name) for name in Prediction.__dataclass_fields__}
    values["created_at"] = as_utc(values["created_at"])
    return Prediction(**values)


def _feedback(row: FeedbackRow) -> Feedback:
    return Feedback(
        row.id,
        row.prediction_id,
        list(row.labels),
        row.expert,
        row.comment,
        row.added_to_pool,
        as_utc(row.created_at),
    )


def as_utc(moment: datetime) -> datetime:
    """SQLite keeps no zone: what it gives back was written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PredictionStore:
    """Reads and writes the gateway's tables; synchronous and thread-safe."""

    def __init__(
        self, engine: Engine, retries: int = 5, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.engine = engine
        self.retries = retries
        self.sleep = sleep

    def create_schema(self) -> None:
        migrate(self.engine)

    def save_image(self, sha256: str, data: bytes, fmt: str, width: int, height: int) -> None:
        """Keep an uploaded image (once per content; retried while the connection drops)."""
        self._retrying(lambda: self._save_image(sha256, data, fmt, width, height))

    def _save_image(self, sha256: str, data: bytes, fmt: str, width: int, height: int) -> None:
        with Session(self.engine) as session:
            if session.get(ImageRow, sha256) is not None:
                return
            session.add(
                ImageRow(
                    sha256=sha256,
                    data=data,
                    format=fmt,
                    width=width,
                    height=height,
                    created_at=datetime.now(UTC),
                )
            )
            try:
                session.commit()
            except IntegrityError:  # another request stored the same image just now
                session.rollback()

    def image(self, sha256: str) -> bytes:
        return self.image_with_format(sha256)[0]

    def image_with_format(self, sha256: str) -> tuple[bytes, str]:
        """The image's bytes and its format (``PNG``, ``JPEG``, ``TIFF``, ``NPY``)."""
        with Session(self.engine) as session:
            row = session.get(ImageRow, sha256)
            if row is None:
                raise NotFound(f"no image {sha256}")
            return row.data, row.format

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
                out[row.prediction_id].append(_feedback(row))
        return out

    def add(
        self,
        predictions: Iterable[Prediction],
        answer: tuple[Claim, dict[str, Any]] | None = None,
    ) -> None:
        """Store predictions (an analysis's two in one transaction; retried while the
        connection drops, so an answer the model gave is not lost to a restart), and in
        the same transaction the answer of the Idempotency-Key they were claimed under:
        both are kept, or neither."""
        rows = [asdict(p) for p in predictions]

        def write() -> None:
            with Session(self.engine) as session, session.begin():
                if rows and session.get(PredictionRow, rows[0]["id"]) is not None:
                    return  # an earlier attempt committed (its ids are fresh per call)
                session.add_all(PredictionRow(**row) for row in rows)
                if answer is not None:
                    _answer(session, *answer)

        self._retrying(write)
        if answer is not None:
            answer[0].answered = True

    def get(self, prediction_id: str) -> Prediction:
        with Session(self.engine) as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise NotFound(f"no prediction {prediction_id!r}")
            return _prediction(row)

    def recent(
        self,
        limit: int = 50,
        *,
        sample_type: str | None = None,
        instrument: str | None = None,
        adapter: str | None = None,
        unreviewed: bool = False,
    ) -> list[Prediction]:
        """The latest predictions, newest first, filtered."""
        query = select(PredictionRow).order_by(PredictionRow.created_at.desc()).limit(limit)
        if sample_type:
            query = query.where(PredictionRow.sample_type == sample_type)
        if instrument:
            query = query.where(PredictionRow.instrument == instrument)
        if adapter:
            query = query.where(PredictionRow.adapter == adapter)
        if unreviewed:
            reviewed = select(FeedbackRow.prediction_id)
            query = query.where(PredictionRow.id.not_in(reviewed))
        with Session(self.engine) as session:
            return [_prediction(row) for row in session.scalars(query)]

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
                    return _feedback(written)
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
                return _feedback(row)

        return self._retrying(write)

    def feedback(self, prediction_id: str) -> list[Feedback]:
        """Every feedback of a prediction, oldest first (the latest one counts)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(FeedbackRow)
                .where(FeedbackRow.prediction_id == prediction_id)
                .order_by(FeedbackRow.id)
            )
            return [_feedback(row) for row in rows]

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
            return [(_prediction(p), _feedback(f)) for p, f in session.execute(query)]

    def claim(
        self,
        api_key_id: str,
        key: str,
        endpoint: str,
        request_hash: str,
        lease: timedelta,
        max_age: timedelta | None = None,
    ) -> Claim | Replay | None:
        """Claim an Idempotency-Key for one model call, the database deciding between
        concurrent requests (the row's primary key). A :class:`Claim` when this request
        is to ask the model; the key's :class:`Replay` when another request answered it
        (or holds it: ``response`` None); None when it changed hands meanwhile (ask
        again). An answer older than ``max_age``, or a claim older than ``lease`` (its
        holder died), is taken over."""
        token = uuid.uuid4().hex
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            session.add(
                IdempotencyRow(
                    api_key_id=api_key_id,
                    key=key,
                    endpoint=endpoint,
                    request_hash=request_hash,
                    response=None,
                    created_at=now,
                    claim=token,
                    answered_at=None,
                )
            )
            try:
                session.commit()
                return Claim(api_key_id, key, token)
            except IntegrityError:
                session.rollback()
            row = session.get(IdempotencyRow, (api_key_id, key))
            if row is None:
                return None  # released or expired since the insert failed
            if row.answered_at is None:
                stale = now - as_utc(row.created_at) > lease
            else:
                stale = max_age is not None and now - as_utc(row.answered_at) > max_age
            if not stale:
                return Replay(row.endpoint, row.request_hash, row.response)
            taken = session.execute(
                update(IdempotencyRow)
                .where(*_key(api_key_id, key), IdempotencyRow.claim == row.claim)
                .values(
                    endpoint=endpoint,
                    request_hash=request_hash,
                    response=None,
                    created_at=now,
                    claim=token,
                    answered_at=None,
                )
            )
            session.commit()
            return Claim(api_key_id, key, token) if _count(taken) == 1 else None

    def answer(self, claim: Claim, response: dict[str, Any]) -> None:
        """Keep the answer of a claimed key (when no prediction was stored with it)."""

        def write() -> None:
            with Session(self.engine) as session, session.begin():
                _answer(session, claim, response)

        self._retrying(write)
        claim.answered = True

    def release(self, claim: Claim) -> None:
        """Give a claimed key back unanswered (the call failed): the next request with
        it asks the model."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(IdempotencyRow).where(
                    *_key(claim.api_key_id, claim.key),
                    IdempotencyRow.claim == claim.token,
                    IdempotencyRow.answered_at.is_(None),
                )
            )

    def replay(self, api_key_id: str, key: str, max_age: timedelta | None = None) -> Replay | None:
        """The answer kept for an Idempotency-Key, unless it is older than ``max_age``
        (then it is forgotten and the key may be used afresh), or there is none yet."""
        with Session(self.engine) as session:
            row = session.get(IdempotencyRow, (api_key_id, key))
            if row is None or row.answered_at is None or row.response is None:
                return None
            if max_age is not None and datetime.now(UTC) - as_utc(row.answered_at) > max_age:
                session.delete(row)
                session.commit()
                return None
            return Replay(row.endpoint, row.request_hash, dict(row.response))

    def remember(
        self, api_key_id: str, key: str, endpoint: str, request_hash: str, response: dict[str, Any]
    ) -> Replay:
        """Keep an answer for its Idempotency-Key at once (claimed and answered); if
        another request holds the key, its answer (or its claim) is returned."""
        got = self.claim(api_key_id, key, endpoint, request_hash, timedelta.max)
        if isinstance(got, Claim):
            self.answer(got, response)
            return Replay(endpoint, request_hash, response)
        if got is None:  # pragma: no cover - the row that collided is gone
            raise InvalidInput("the Idempotency-Key could not be recorded")
        return got

    def _retrying(self, write: Callable[[], T]) -> T:
        return retrying(write, self.retries, self.sleep)


def _key(api_key_id: str, key: str) -> tuple[Any, Any]:
    return IdempotencyRow.api_key_id == api_key_id, IdempotencyRow.key == key


def _count(result: Any) -> int:
    return int(result.rowcount)


def _answer(session: Session, claim: Claim, response: dict[str, Any]) -> None:
    """Answer a claimed key in ``session``'s transaction; ``Conflict`` when the claim
    is no longer this request's (its lease ran out and another request took the key)."""
    answered = session.execute(
        update(IdempotencyRow)
        .where(
            *_key(claim.api_key_id, claim.key),
            IdempotencyRow.claim == claim.token,
            IdempotencyRow.answered_at.is_(None),
        )
        .values(response=response, answered_at=datetime.now(UTC))
    )
    if _count(answered) != 1:
        raise Conflict(
            f"Idempotency-Key {claim.key!r} was taken over while the model answered (its "
            "lease ran out); send the request again for the answer that counts"
        )


def retrying(write: Callable[[], T], retries: int, sleep: Callable[[float], None]) -> T:
    """``write()``, again (with back-off) while the database connection drops, as in a
    PostgreSQL restart; other errors are raised at once."""
    for attempt in range(retries + 1):
        try:
            return write()
        except (OperationalError, DBAPIError) as error:
            if not error.connection_invalidated and not isinstance(error, OperationalError):
                raise
            if attempt == retries:
                raise
            delay = min(0.2 * 2**attempt, 5.0)
            log.warning("database write failed (%s); retrying in %.1f s", error, delay)
            sleep(delay)
    raise AssertionError("unreachable")
