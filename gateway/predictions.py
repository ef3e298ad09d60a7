"""Predictions and their provenance: forward a request to the diagnosis or the agent
service, and keep each answer with what produced it (adapter, prompt, examples, seed,
k, strategy, latencies, the request and the image) in one transaction with the answer of
the Idempotency-Key it was made under. Storing is retried while the database connection
drops, so an answer the model gave is not lost to a restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.idempotency import Claim, answer_claim
from gateway.keys import ApiKey
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.tables import FeedbackRow, ImageRow, PredictionRow, Tables
from ptychobench.labels import Task, describe
from ptychowire.agent import RecommendRequest, RecommendResponse, SampleInfo
from ptychowire.diagnosis import DiagnoseOptions, DiagnoseResponse, ImageInfo
from ptychowire.gateway import (
    Analysis,
    AnalyzeOptions,
    DiagnosisAnswer,
    LabelText,
    RecommendationAnswer,
)
from services.common.database import as_utc
from services.common.errors import BackendError, NotFound
from services.common.upstream import DEFAULT_CIRCUIT, Upstream

if TYPE_CHECKING:
    from gateway.store import PredictionStore

R = TypeVar("R", bound=BaseModel)


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


def prediction_of(row: PredictionRow) -> Prediction:
    values = {name: getattr(row, name) for name in Prediction.__dataclass_fields__}
    values["created_at"] = as_utc(values["created_at"])
    return Prediction(**values)


class PredictionTables(Tables):
    """The store functions of predictions and their images."""

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
                    answer_claim(session, *answer)

        self._retrying(write)
        if answer is not None:
            answer[0].answered = True

    def get(self, prediction_id: str) -> Prediction:
        with Session(self.engine) as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise NotFound(f"no prediction {prediction_id!r}")
            return prediction_of(row)

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
            return [prediction_of(row) for row in session.scalars(query)]


def _parse(model: type[R], data: Any, service: str) -> R:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BackendError(
            f"the {service} service answered in an unexpected shape: {error}"
        ) from error


class Predictions:
    """Asks the diagnosis and agent services and keeps their answers as predictions."""

    def __init__(
        self,
        settings: GatewaySettings,
        store: PredictionStore,
        metrics: GatewayMetrics,
        diagnosis: Upstream,
        agent: Upstream,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.diagnosis = diagnosis
        self.agent = agent

    async def _call(self, upstream: Upstream, name: str, path: str, **kwargs: Any) -> Any:
        response, _ = await upstream.request("POST", path, label=name, **kwargs)
        try:
            return response.json()
        except ValueError as error:
            raise BackendError(f"the {name} service answered with no JSON: {error}") from error

    async def _diagnose(
        self, options: DiagnoseOptions, image: bytes, request_id: str | None
    ) -> DiagnoseResponse:
        body = await self._call(
            self.diagnosis,
            "diagnosis",
            "/v1/diagnose",
            files={"image": ("image", image, "application/octet-stream")},
            data={"request": options.model_dump_json()},
            request_id=request_id,
            circuit=options.backend or DEFAULT_CIRCUIT,  # a dead VLM leaves the classifier
        )
        return _parse(DiagnoseResponse, body, "diagnosis")

    async def _recommend(
        self, request: RecommendRequest, request_id: str | None
    ) -> RecommendResponse:
        body = await self._call(
            self.agent,
            "agent",
            "/v1/recommend",
            body=request.model_dump(mode="json"),
            request_id=request_id,
        )
        return _parse(RecommendResponse, body, "agent")

    @staticmethod
    def _provenance(
        answer: DiagnoseResponse | RecommendResponse,
        key: ApiKey,
        latency_s: float,
        kind: str,
        analysis_id: str | None,
    ) -> dict[str, Any]:
        """What both kinds of answer record alike."""
        return {
            "kind": kind,
            "raw_answer": answer.raw_answer,
            "adapter": answer.adapter,
            "seed": answer.seed,
            "k": answer.k,
            "strategy": answer.strategy,
            "latency_s": latency_s,
            "backend_latency_s": answer.backend_latency_s,
            "unmapped": answer.unmapped,
            "prompt_version": answer.prompt_version,
            "prompt_hash": answer.prompt_hash,
            "example_ids": answer.example_ids,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "analysis_id": analysis_id,
            "api_key_id": key.id,
        }

    def _diagnosis_record(
        self,
        options: DiagnoseOptions,
        answer: DiagnoseResponse,
        key: ApiKey,
        latency_s: float,
        kind: str,
        analysis_id: str | None = None,
    ) -> Prediction:
        return Prediction(
            task=Task.DETECTION.value,
            sample_type=options.sample.sample_type,
            instrument=options.sample.instrument,
            labels=answer.labels,
            backend=answer.backend,
            service_url=self.settings.diagnosis.base_url,
            request=options.model_dump(mode="json"),
            scores=answer.scores,
            image_sha256=answer.image.sha256,
            **self._provenance(answer, key, latency_s, kind, analysis_id),
        )

    def _recommendation_record(
        self,
        request: RecommendRequest,
        answer: RecommendResponse,
        key: ApiKey,
        latency_s: float,
        kind: str,
        analysis_id: str | None = None,
    ) -> Prediction:
        return Prediction(
            task=Task.RECOMMENDATION.value,
            sample_type=request.sample.sample_type,
            instrument=request.sample.instrument,
            labels=answer.letters,
            backend="llm",
            service_url=self.settings.agent.base_url,
            request=request.model_dump(mode="json"),
            **self._provenance(answer, key, latency_s, kind, analysis_id),
        )

    async def _keep(
        self,
        predictions: Sequence[Prediction],
        image: tuple[bytes, ImageInfo] | None,
        answer: BaseModel,
        claim: Claim | None,
    ) -> None:
        """Store the predictions, and with them the answer of the Idempotency-Key they
        were made under (one transaction)."""
        answered = None if claim is None else (claim, answer.model_dump(mode="json"))

        def write() -> None:
            if image is not None:
                data, info = image
                self.store.save_image(info.sha256, data, info.format, info.width, info.height)
            self.store.add(predictions, answered)

        await asyncio.to_thread(write)
        for p in predictions:
            self.metrics.predictions.labels(task=p.task, kind=p.kind, adapter=p.adapter).inc()
            self.metrics.prepare_outcomes(p.task, p.adapter, p.strategy, p.k)

    @staticmethod
    def _diagnosis(answer: DiagnoseResponse, prediction: Prediction) -> DiagnosisAnswer:
        fields = answer.model_dump()
        fields["latency_s"] = prediction.latency_s
        return DiagnosisAnswer(
            **fields,
            prediction_id=prediction.id,
            artifacts=[
                LabelText(label=label, text=text)
                for label, text in describe(answer.labels, Task.DETECTION)
            ],
        )

    @staticmethod
    def _recommendation(answer: RecommendResponse, prediction: Prediction) -> RecommendationAnswer:
        fields = answer.model_dump()
        fields["latency_s"] = prediction.latency_s
        return RecommendationAnswer(**fields, prediction_id=prediction.id)

    async def diagnose(
        self,
        options: DiagnoseOptions,
        image: bytes,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
        kind: str = "diagnose",
    ) -> DiagnosisAnswer:
        started = time.perf_counter()
        answer = await self._diagnose(options, image, request_id)
        prediction = self._diagnosis_record(
            options, answer, key, time.perf_counter() - started, kind
        )
        result = self._diagnosis(answer, prediction)
        await self._keep([prediction], (image, answer.image), result, claim)
        return result

    async def recommend(
        self,
        request: RecommendRequest,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
        kind: str = "recommend",
    ) -> RecommendationAnswer:
        started = time.perf_counter()
        answer = await self._recommend(request, request_id)
        prediction = self._recommendation_record(
            request, answer, key, time.perf_counter() - started, kind
        )
        result = self._recommendation(answer, prediction)
        await self._keep([prediction], None, result, claim)
        return result

    async def analyze(
        self,
        options: AnalyzeOptions,
        image: bytes,
        key: ApiKey,
        request_id: str | None,
        claim: Claim | None = None,
    ) -> Analysis:
        """Diagnose, then recommend with the detected artifacts as the observed ones;
        both predictions are kept together (or neither, if a step fails)."""
        started = time.perf_counter()
        analysis_id = uuid.uuid4().hex
        diagnose_options = options.diagnose_options()
        found = await self._diagnose(diagnose_options, image, request_id)
        diagnosed_at = time.perf_counter()
        sample = options.sample
        request = RecommendRequest(
            sample=SampleInfo(
                package=sample.package,
                instrument=sample.instrument,
                sample_type=sample.sample_type,
                beam=sample.beam,
                description=sample.description,
                artifacts=found.labels,
                parameters=sample.parameters,
            ),
            sample_id=sample.id,
            **options.recommendation.model_dump(),
        )
        advice = await self._recommend(request, request_id)
        done = time.perf_counter()
        diagnosis = self._diagnosis_record(
            diagnose_options, found, key, diagnosed_at - started, "analyze", analysis_id
        )
        recommendation = self._recommendation_record(
            request, advice, key, done - diagnosed_at, "analyze", analysis_id
        )
        result = Analysis(
            analysis_id=analysis_id,
            diagnosis=self._diagnosis(found, diagnosis),
            recommendation=self._recommendation(advice, recommendation),
            latency_s=done - started,
        )
        await self._keep([diagnosis, recommendation], (image, found.image), result, claim)
        return result
