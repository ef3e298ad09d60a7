"""Score a served model or adapter on a PtychoBench split, straight against the engine.

This is the engine-level check of an adapter (base vs SFT): the paper's prompt, k
examples chosen from the training split, greedy decoding, the answer optionally held to
the label format by ``structured_outputs``, parsing and micro-F1 with a bootstrap CI
from the core library, the requests sent by the project's one engine client
(``services.common.backend``). The full benchmark through the services is the gateway's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ptychobench.bootstrap import bootstrap
from ptychobench.data import Sample, read_release
from ptychobench.labels import Task, vocabulary
from ptychobench.metrics import score
from ptychobench.parsing import parse_answer
from ptychobench.prompts import answer_regex, build_for_sample
from ptychobench.selection import Strategy, select_examples

if TYPE_CHECKING:
    from services.common.backend import BlockingBackend


class EvaluationError(RuntimeError):
    """The engine did not answer; the message says which request and why."""


@dataclass(frozen=True)
class Settings:
    task: Task = Task.RECOMMENDATION
    split: str = "test"
    k: int = 0
    strategy: Strategy = Strategy.SSFS
    seed: int = 0
    constrained: bool = True
    max_tokens: int = 48
    concurrency: int = 1
    limit: int | None = None


@dataclass
class Evaluation:
    model: str
    settings: Settings
    ids: list[str] = field(default_factory=list)
    truths: list[tuple[str, ...]] = field(default_factory=list)
    predictions: list[tuple[str, ...]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    parse_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def summary(self, n_resamples: int = 10_000) -> dict[str, Any]:
        """Micro-F1 with its 95 % bootstrap CI, macro-F1 and the counts behind them."""
        vocab = vocabulary(self.settings.task)
        scores = score(self.truths, self.predictions, vocab)
        ci = bootstrap(self.truths, self.predictions, vocab=vocab, n_resamples=n_resamples, seed=0)
        return {
            "model": self.model,
            "task": self.settings.task.value,
            "split": self.settings.split,
            "k": self.settings.k,
            "strategy": self.settings.strategy.value,
            "constrained": self.settings.constrained,
            "n": len(self.ids),
            "micro_f1": round(scores.micro.f1, 4),
            "micro_f1_ci": [round(ci.ci_low, 4), round(ci.ci_high, 4)],
            "macro_f1": round(scores.macro.f1, 4),
            "parse_failures": self.parse_failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 1),
        }


def engine(base_url: str, timeout: float = 300.0, concurrency: int = 1) -> BlockingBackend:
    """The project's engine client for ``base_url``: one retry, a second later, of what
    the project's retry policy repeats (a dropped connection, a timeout, 408/429/5xx);
    no response cache."""
    from services.common.backend import BlockingBackend
    from services.common.settings import BackendSettings

    settings = BackendSettings(
        base_url=base_url,
        timeout_s=timeout,
        max_retries=1,
        backoff_s=1.0,
        max_connections=max(concurrency, 1),
    )
    return BlockingBackend(settings)


def complete(backend: BlockingBackend, body: dict[str, Any]) -> dict[str, Any]:
    """One chat completion of ``body`` as it is; :class:`EvaluationError` when the engine
    refuses it or does not answer."""
    from services.common.errors import BackendError

    try:
        return backend.completion(body)
    except BackendError as error:  # refused, or no answer after the retry: the message says
        raise EvaluationError(f"{body['model']}: {error}") from None


def chat(base_url: str, body: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """One chat completion, through a client of its own (for a script's few calls)."""
    with engine(base_url, timeout) as backend:
        return complete(backend, body)


def request_body(
    model: str, query: Sample, examples: Sequence[Sample], settings: Settings
) -> dict[str, Any]:
    conversation = build_for_sample(settings.task, query, examples)
    body: dict[str, Any] = {
        "model": model,
        "messages": conversation.messages,
        "temperature": 0,
        "max_tokens": settings.max_tokens,
        "seed": settings.seed,
    }
    if settings.constrained:
        body["structured_outputs"] = {"regex": answer_regex(settings.task)}
    return body


def evaluate(
    base_url: str,
    model: str,
    dataset: str,
    settings: Settings = Settings(),
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Send every item of the split to ``model`` and score the answers."""
    data = read_release(dataset)
    queries = list(data.samples(settings.task, settings.split))
    if settings.limit is not None:
        queries = queries[: settings.limit]
    pool = data.samples(settings.task, "train")
    bodies = [
        request_body(
            model,
            query,
            select_examples(query, pool, settings.k, settings.strategy, settings.seed),
            settings,
        )
        for query in queries
    ]
    result = Evaluation(model=model, settings=settings)
    started = time.perf_counter()
    done = 0
    with (
        engine(base_url, concurrency=settings.concurrency) as backend,
        ThreadPoolExecutor(settings.concurrency) as executor,
    ):
        for query, reply in zip(
            queries, executor.map(lambda b: complete(backend, b), bodies), strict=True
        ):
            text = str(reply["choices"][0]["message"]["content"] or "")
            parsed = parse_answer(text, settings.task)
            result.ids.append(query.id)
            result.truths.append(query.labels(settings.task))
            result.predictions.append(parsed.labels)
            result.raw.append(text)
            result.parse_failures += int(not parsed.ok)
            usage = reply.get("usage") or {}
            result.prompt_tokens += int(usage.get("prompt_tokens", 0))
            result.completion_tokens += int(usage.get("completion_tokens", 0))
            done += 1
            if progress is not None:
                progress(done, len(queries))
    result.seconds = time.perf_counter() - started
    return result
