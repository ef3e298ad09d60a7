"""Asking the engine one task's question and reading its answer — the same for both
model services: the conversation goes out (the answer held to the task's vocabulary by
a regex when ``constrained``), the answer is parsed, and a parse failure is counted."""

from __future__ import annotations

from dataclasses import dataclass

from ptychobench.labels import Task
from ptychobench.parsing import ParseResult, parse_answer
from ptychobench.prompts import Conversation, answer_regex
from services.common.backend import BackendClient, Completion
from services.common.metrics import ServiceMetrics


@dataclass(frozen=True)
class AnswerSettings:
    max_tokens: int
    max_labels: int
    constrained: bool


async def ask(
    backend: BackendClient,
    conversation: Conversation,
    model: str,
    settings: AnswerSettings,
    metrics: ServiceMetrics,
    *,
    seed: int,
    request_id: str | None,
) -> tuple[Completion, ParseResult]:
    """The engine's answer to ``conversation`` and what it parses into."""
    task = conversation.task
    regex = answer_regex(task, settings.max_labels) if settings.constrained else None
    completion = await backend.chat(
        conversation.messages,
        model=model,
        max_tokens=settings.max_tokens,
        seed=seed,
        regex=regex,
        request_id=request_id,
    )
    parsed = parse_answer(completion.text, task)
    if not parsed.ok:
        metrics.parse_failures.labels(task=Task(task).value).inc()
    return completion, parsed
