"""Artifact detection: an uploaded reconstruction → artifact labels, by the vision-language
model (the paper's prompt with k example images, answer held to the label vocabulary) or
by the frozen-feature classifier (in process)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ptychobench.backbone import BackboneUnavailableError
from ptychobench.labels import Task
from ptychobench.prompts import DETECTION_PROMPT, build_conversation, format_answer
from ptychowire.diagnosis import DiagnoseOptions, DiagnoseResponse, ImageInfo
from services.common.answers import AnswerSettings, ask
from services.common.backend import BackendClient
from services.common.errors import BackendUnavailable, NotFound
from services.common.examples import ExampleSource, query_sample
from services.common.metrics import ServiceMetrics
from services.common.settings import check_k
from services.diagnosis.images import DecodedImage, ImageLimits, decode_image
from services.diagnosis.settings import DiagnosisSettings

if TYPE_CHECKING:
    from ptychobench.classifier import FeatureClassifier


class ClassifierHolder:
    """The classifier, loaded once on first use (a missing or broken file, or a
    backbone it needs that is not installed, is reported by readiness and by the first
    request, not at import). A model that reads the pretrained backbone builds it here
    too, so that the first request does not pay for it."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._model: FeatureClassifier | None = None
        self._lock = threading.Lock()

    def get(self) -> FeatureClassifier:
        with self._lock:
            if self._model is None:
                from ptychobench.classifier import FeatureClassifier

                model = FeatureClassifier.load(self.directory)
                if model.projection is not None:
                    from ptychobench.backbone import network

                    network()
                self._model = model
            return self._model

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self.get)
        except (OSError, ValueError, BackboneUnavailableError):
            return False
        return True


def image_info(image: DecodedImage) -> ImageInfo:
    return ImageInfo(
        format=image.format,
        mode=image.mode,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        colormap=image.colormap,
    )


class DiagnosisService:
    def __init__(
        self,
        backend: BackendClient,
        examples: ExampleSource,
        classifier: ClassifierHolder,
        settings: DiagnosisSettings,
        metrics: ServiceMetrics,
    ) -> None:
        self.backend = backend
        self.examples = examples
        self.classifier = classifier
        self.settings = settings
        self.metrics = metrics
        self.answering = AnswerSettings(
            settings.max_tokens, settings.max_labels, settings.constrained
        )
        self.limits = ImageLimits(settings.max_image_bytes, settings.max_pixels)

    async def diagnose(
        self, options: DiagnoseOptions, image: bytes, request_id: str | None = None
    ) -> DiagnoseResponse:
        started = time.perf_counter()
        check_k(options.k, self.settings.max_k, "the engine takes at most k + 1 images per prompt")
        decoded = await asyncio.to_thread(decode_image, image, self.limits)
        kind = options.backend or self.settings.default_backend
        if kind == "classifier":
            response = await self._classify(options, decoded)
        else:
            response = await self._ask_vlm(options, decoded, request_id)
        response.latency_s = round(time.perf_counter() - started, 4)
        return response

    async def _classify(self, options: DiagnoseOptions, image: DecodedImage) -> DiagnoseResponse:
        try:
            model = await asyncio.to_thread(self.classifier.get)
        except (OSError, ValueError, BackboneUnavailableError) as error:
            raise BackendUnavailable(
                f"the classifier at {self.classifier.directory} is missing or broken: {error}"
            ) from error
        name = f"{model.name}@{model.version}"
        if options.adapter not in (None, model.name, name):
            raise NotFound(f"unknown classifier {options.adapter!r}; this service has {name}")
        started = time.perf_counter()
        scores = await asyncio.to_thread(model.scores, image.pixels)
        labels = model.decide([scores[label] for label in model.labels])
        seconds = time.perf_counter() - started
        self.metrics.backend_call(name, seconds, "ok")
        return DiagnoseResponse(
            labels=list(labels),
            raw_answer=format_answer(labels, Task.DETECTION),
            unmapped=[],
            scores={label: round(value, 6) for label, value in scores.items()},
            backend="classifier",
            adapter=name,
            k=0,
            strategy=options.strategy,
            seed=options.seed,
            example_ids=[],
            image=image_info(image),
            backend_latency_s=round(seconds, 4),
            latency_s=0.0,
        )

    async def _ask_vlm(
        self, options: DiagnoseOptions, image: DecodedImage, request_id: str | None
    ) -> DiagnoseResponse:
        examples = await self.examples.select(
            Task.DETECTION,
            query_sample(options.sample),
            options.k,
            options.strategy,
            options.seed,
            request_id,
        )
        conversation = build_conversation(Task.DETECTION, DETECTION_PROMPT, examples, image.png)
        adapter = options.adapter or self.settings.backend.model
        completion, parsed = await ask(
            self.backend,
            conversation,
            adapter,
            self.answering,
            self.metrics,
            seed=options.seed,
            request_id=request_id,
        )
        return DiagnoseResponse(
            labels=list(parsed.labels),
            raw_answer=completion.text,
            unmapped=list(parsed.unmapped),
            backend="vlm",
            adapter=adapter,
            k=conversation.k,
            strategy=options.strategy,
            seed=options.seed,
            example_ids=list(conversation.example_ids),
            prompt_version=conversation.prompt_version,
            prompt_hash=conversation.prompt_hash,
            image=image_info(image),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            backend_latency_s=round(completion.latency_s, 4),
            latency_s=0.0,
        )
