"""What the gateway does: forward to the diagnosis and agent services, keep every answer
with its provenance, replay Idempotency-Keys, take expert feedback into live F1 and, on
request, into the retriever's example pool."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.keys import ApiKey
from gateway.metrics import GatewayMetrics, outcomes
from gateway.settings import GatewaySettings
from gateway.store import Claim, Feedback, Prediction, PredictionStore, retrying
from ptychobench.labels import Task, canonical_order, describe, null_label, vocabulary
from ptychobench.metrics import score
from ptychobench.prompts import format_parameters
from ptychowire.agent import RecommendRequest, RecommendResponse, SampleInfo
from ptychowire.diagnosis import DiagnoseOptions, DiagnoseResponse, ImageInfo
from ptychowire.gateway import (
    Analysis,
    AnalyzeOptions,
    ClassScore,
    DiagnosisAnswer,
    FeedbackEntry,
    FeedbackRequest,
    FeedbackResponse,
    LabelText,
    LiveF1Response,
    LiveScore,
    Outcomes,
    PredictionRecord,
    RecommendationAnswer,
)
from services.common.errors import BackendError, Conflict, InvalidInput, NotFound, ServiceError
from services.common.upstream import DEFAULT_CIRCUIT, Upstream

R = TypeVar("R", bound=BaseModel)
IDEMPOTENCY_KEY_MAX = 200


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Any, asyncio.Lock] = {}
        self._users: defaultdict[Any, int] = defaultdict(int)

    @asynccontextmanager
    async def hold(self, key: Any) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


def request_hash(endpoint: str, options: BaseModel, image: bytes | None = None) -> str:
    """What an Idempotency-Key is bound to: the endpoint, the options and the image."""
    digest = hashlib.sha256(endpoint.encode())
    digest.update(json.dumps(options.model_dump(mode="json"), sort_keys=True).encode())
    if image is not None:
        digest.update(hashlib.sha256(image).digest())
    return digest.hexdigest()


def _parse(model: type[R], data: Any, service: str) -> R:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BackendError(
            f"the {service} service answered in an unexpected shape: {error}"
        ) from error


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        store: PredictionStore,
        metrics: GatewayMetrics,
        diagnosis: Upstream,
        agent: Upstream,
        retriever: Upstream | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.diagnosis = diagnosis
        self.agent = agent
        self.retriever = retriever
        self._idempotency = KeyedLocks()
        self._reviews = KeyedLocks()

    # ------------------------------------------------------------------ idempotency

    async def once(
        self,
        key: ApiKey,
        idempotency_key: str | None,
        endpoint: str,
        fingerprint: str,
        compute: Callable[[Claim | None], Awaitable[BaseModel]],
    ) -> tuple[dict[str, Any], bool]:
        """The answer as JSON, and whether it is a replay.

        With an Idempotency-Key the model is asked once, whichever process or host
        each request reaches: the key is claimed in the database first, ``compute``
        stores its prediction and the answer together under that claim, and a request
        with the same key gets the stored answer. A duplicate that arrives while the
        first is still being answered waits for it (up to ``idempotency_wait_s``, then a
        409 it may send again); the same key for a different request is a 422; a
        failed call gives the key back, so the next try asks the model."""
        if idempotency_key is None:
            return (await compute(None)).model_dump(mode="json"), False
        if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise InvalidInput(f"Idempotency-Key must have 1 to {IDEMPOTENCY_KEY_MAX} characters")
        settings = self.settings
        max_age = timedelta(hours=settings.idempotency_ttl_h)
        lease = timedelta(seconds=settings.idempotency_lease_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.idempotency_wait_s
        pause = 0.02
        # duplicates within this process queue here; across processes, on the database
        async with self._idempotency.hold((key.id, idempotency_key)):
            while True:
                got = await asyncio.to_thread(
                    self.store.claim, key.id, idempotency_key, endpoint, fingerprint, lease, max_age
                )
                if isinstance(got, Claim):
                    return await self._answer_claimed(got, compute), False
                if got is not None:
                    if (got.endpoint, got.request_hash) != (endpoint, fingerprint):
                        raise InvalidInput(
                            f"Idempotency-Key {idempotency_key!r} was used for a different "
                            f"request ({got.endpoint}); use a new key for a new request"
                        )
                    if got.response is not None:
                        return got.response, True
                if loop.time() >= deadline:
                    raise Conflict(
                        f"a request with Idempotency-Key {idempotency_key!r} is still being "
                        "answered; send it again later for its answer"
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def _answer_claimed(
        self, claim: Claim, compute: Callable[[Claim | None], Awaitable[BaseModel]]
    ) -> dict[str, Any]:
        try:
            answer = (await compute(claim)).model_dump(mode="json")
            if not claim.answered:  # nothing was stored with it
                await asyncio.to_thread(self.store.answer, claim, answer)
        except BaseException:
            if not claim.answered:
                await asyncio.to_thread(self.store.release, claim)
            raise
        return answer

    # ------------------------------------------------------------------ predictions

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

    # ------------------------------------------------------------------ reading back

    def record(self, prediction: Prediction, feedback: list[Feedback]) -> PredictionRecord:
        return PredictionRecord(
            id=prediction.id,
            created_at=prediction.created_at,
            kind=prediction.kind,
            task=prediction.task,
            analysis_id=prediction.analysis_id,
            sample_type=prediction.sample_type,
            instrument=prediction.instrument,
            labels=[
                LabelText(label=label, text=text)
                for label, text in describe(prediction.labels, prediction.task)
            ],
            raw_answer=prediction.raw_answer,
            unmapped=prediction.unmapped,
            scores=prediction.scores,
            backend=prediction.backend,
            adapter=prediction.adapter,
            service_url=prediction.service_url,
            prompt_version=prediction.prompt_version,
            prompt_hash=prediction.prompt_hash,
            example_ids=prediction.example_ids,
            seed=prediction.seed,
            k=prediction.k,
            strategy=prediction.strategy,
            latency_s=prediction.latency_s,
            backend_latency_s=prediction.backend_latency_s,
            prompt_tokens=prediction.prompt_tokens,
            completion_tokens=prediction.completion_tokens,
            request=prediction.request,
            image_sha256=prediction.image_sha256,
            feedback=[
                FeedbackEntry(
                    id=f.id,
                    labels=f.labels,
                    expert=f.expert,
                    comment=f.comment,
                    added_to_pool=f.added_to_pool,
                    created_at=f.created_at,
                )
                for f in feedback
            ],
        )

    async def prediction(self, prediction_id: str) -> PredictionRecord:
        def read() -> PredictionRecord:
            return self.record(self.store.get(prediction_id), self.store.feedback(prediction_id))

        return await asyncio.to_thread(read)

    async def predictions(self, limit: int, **filters: Any) -> list[PredictionRecord]:
        def read() -> list[PredictionRecord]:
            found = self.store.recent(limit, **filters)
            feedback = self.store.feedback_for(p.id for p in found)
            return [self.record(p, feedback[p.id]) for p in found]

        return await asyncio.to_thread(read)

    async def image(self, prediction_id: str) -> tuple[bytes, str]:
        def read() -> tuple[bytes, str]:
            prediction = self.store.get(prediction_id)
            if prediction.image_sha256 is None:
                raise NotFound(f"prediction {prediction_id!r} has no image (a recommendation)")
            return self.store.image_with_format(prediction.image_sha256)

        return await asyncio.to_thread(read)

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
                        ClassScore(
                            label=label,
                            precision=prf.precision,
                            recall=prf.recall,
                            f1=prf.f1,
                            support=prf.support,
                        )
                        for label, prf in result.per_class.items()
                        if prf.support or label in predicted
                    ],
                )
            )
        return LiveF1Response(since=since, scores=scores)

    # ------------------------------------------------------------------ feedback

    async def feedback(
        self, prediction_id: str, body: FeedbackRequest, key: ApiKey
    ) -> FeedbackResponse:
        """Record an expert's true labels; the latest review of a prediction counts."""
        if body.add_to_pool and self.retriever is None:
            raise InvalidInput(
                "add_to_pool needs the retriever, and this gateway has none configured "
                "(GATEWAY_RETRIEVER__BASE_URL)"
            )
        async with self._reviews.hold(prediction_id):
            prediction, earlier = await asyncio.to_thread(
                retrying,
                lambda: self._prediction_and_reviews(prediction_id),
                self.store.retries,
                self.store.sleep,
            )
            labels = _check_labels(body.labels, prediction.task)
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
        if body.add_to_pool:
            try:
                await self._add_to_pool(prediction, labels)
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

    async def _add_to_pool(self, prediction: Prediction, labels: list[str]) -> None:
        """The sample with its corrected labels, as a training example of the pool."""
        assert self.retriever is not None
        example: dict[str, Any] = {
            "task": prediction.task,
            "id": f"feedback-{prediction.id}",
            "sample_type": prediction.sample_type,
            "instrument": prediction.instrument,
            "split": "train",
            "source": "feedback",
            "origin": f"prediction:{prediction.id}",
        }
        request = prediction.request
        if prediction.task == Task.DETECTION.value:
            if prediction.image_sha256 is None:
                raise InvalidInput("the prediction kept no image to add to the pool")
            image = await asyncio.to_thread(self.store.image, prediction.image_sha256)
            example |= {
                "artifacts": labels,
                "description": request.get("sample", {}).get("description", ""),
                "image_base64": base64.b64encode(image).decode(),
            }
        else:
            sample = request.get("sample", {})
            example |= {
                "options": labels,
                "artifacts": sample.get("artifacts", []),
                "description": sample.get("description", ""),
                "beam": sample.get("beam", "X-ray"),
                "package": sample.get("package", "pty-chi"),
                "parameters": format_parameters(sample.get("parameters", {})),
            }
        await self.retriever.request("POST", "/v1/examples", example, label="retriever")


def _check_labels(labels: list[str], task: str) -> list[str]:
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
