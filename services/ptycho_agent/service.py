"""Parameter recommendation: the paper's prompt with k examples, sent to the engine,
parsed into option letters and the Pty-chi changes they mean."""

from __future__ import annotations

import time

from ptychobench.changes import CHANGES
from ptychobench.data import Sample
from ptychobench.labels import OPTIONS, Task
from ptychobench.prompts import (
    build_conversation,
    format_parameters,
    recommendation_prompt,
)
from ptychowire.agent import (
    OptionChange,
    Recommendation,
    RecommendRequest,
    RecommendResponse,
)
from services.common.answers import AnswerSettings, ask
from services.common.backend import BackendClient
from services.common.examples import ExampleSource
from services.common.metrics import ServiceMetrics
from services.common.settings import check_k
from services.ptycho_agent.settings import AgentSettings


def query_sample(request: RecommendRequest) -> Sample:
    info = request.sample
    return Sample(
        id=request.sample_id or "query",
        sample_type=info.sample_type,
        instrument=info.instrument,
        beam=info.beam,
        package=info.package,
        artifacts=tuple(info.artifacts),
        caption_obj=info.description,
        parameters=format_parameters(info.parameters),
    )


class AgentService:
    def __init__(
        self,
        backend: BackendClient,
        examples: ExampleSource,
        settings: AgentSettings,
        metrics: ServiceMetrics,
    ) -> None:
        self.backend = backend
        self.examples = examples
        self.settings = settings
        self.metrics = metrics
        self.answering = AnswerSettings(
            settings.max_tokens, settings.max_letters, settings.constrained
        )

    async def recommend(
        self, request: RecommendRequest, request_id: str | None = None
    ) -> RecommendResponse:
        started = time.perf_counter()
        check_k(request.k, self.settings.max_k)
        query = query_sample(request)
        examples = await self.examples.select(
            Task.RECOMMENDATION, query, request.k, request.strategy, request.seed, request_id
        )
        conversation = build_conversation(
            Task.RECOMMENDATION, recommendation_prompt(query), examples
        )
        adapter = request.adapter or self.settings.backend.model
        completion, parsed = await ask(
            self.backend,
            conversation,
            adapter,
            self.answering,
            self.metrics,
            seed=request.seed,
            request_id=request_id,
        )
        recommendations = [
            Recommendation(
                letter=letter,
                text=OPTIONS[letter],
                changes=[OptionChange(**c.to_dict()) for c in CHANGES[letter]],
            )
            for letter in parsed.labels
        ]
        return RecommendResponse(
            recommendations=recommendations,
            letters=list(parsed.labels),
            raw_answer=completion.text,
            unmapped=list(parsed.unmapped),
            adapter=adapter,
            k=conversation.k,
            strategy=request.strategy,
            seed=request.seed,
            example_ids=list(conversation.example_ids),
            prompt_version=conversation.prompt_version,
            prompt_hash=conversation.prompt_hash,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            backend_latency_s=round(completion.latency_s, 4),
            latency_s=round(time.perf_counter() - started, 4),
        )
